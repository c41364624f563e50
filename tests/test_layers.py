"""The house plan, enforced: imports point down the layers of docs/architecture.md.

A module may import keizoku modules of its own layer or lower, never higher; only
``keizoku.cli`` imports typer and only ``keizoku.registry`` imports MLflow. The check
reads every module's imports (top-level and inside functions) with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "keizoku"

# Lower number = lower layer. A module not listed by its own name takes its package's rank.
RANKS: dict[str, float] = {
    "errors": 0, "home": 0, "names": 0, "duration": 0, "sections": 0, "audit": 0, "store": 0,
    "_lazy": 0,  # a package's names loaded on first use (keizoku, keizoku.data)
    "auth": 0, "reporting": 0.5,
    "data": 1, "features": 1, "prediction": 1,
    "rag": 2,
    # Inside the registry, as in MLflow: the store and its client, then the model registry
    # (versions, aliases, verified reads), then tracking (runs; a run registers what it
    # logged). The model registry never imports tracking; the package re-exports both.
    "registry.backend": 2.1, "registry.seed": 2.1, "registry.refs": 2.1,
    "registry.servable": 2.1,
    "registry.models": 2.2, "registry.pyfunc": 2.3, "registry.tracking": 2.3,
    "registry": 2.4,
    "training": 3, "deep": 3,  # deep: the PyTorch networks, imported by training only
    "distributed": 3,  # Ray: the search's fold executor, Ray Data scoring (decision 23)
    # keizoku.forecast: a training package; its monitor reads the log, its loop gates.
    "forecast": 3, "forecast.monitor": 4, "forecast.loop": 6,
    "clustering": 3, "clustering.report": 4, "clustering.gates": 4.5, "clustering.lifecycle": 6,
    "deep.loop": 6,  # the image loop: trains, registers and gates like forecast.loop
    "evaluation": 4, "monitoring": 4, "export": 4,
    # The lifecycle's spec sections (retraining policy, gate settings) sit below the spec.
    "lifecycle.policy": 4.5, "lifecycle.gates": 4.5, "lifecycle.resample": 4.5,
    "spec": 5, "project": 5,
    "lifecycle": 6,
    # The Python API and the scikit-learn estimators: over training, registry and lifecycle.
    "api": 6.5, "sklearn": 6.5,
    "serving": 7,
    "console": 7,  # the web console (docs/decisions/0021-web-console.md), beside serving
    "cli": 8,
}  # fmt: skip


def _name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _rank(module: str) -> float:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in RANKS:
            return RANKS[key]
    raise KeyError(f"keizoku.{module} has no layer: add it to RANKS in tests/test_layers.py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "keizoku":
                out += [
                    (node.lineno, f"keizoku.{a.name}") for a in node.names if _is_module(a.name)
                ]
    return out


def _is_module(name: str) -> bool:
    return (SRC / f"{name}.py").exists() or (SRC / name / "__init__.py").exists()


MODULES = sorted(p for p in SRC.rglob("*.py") if _name(p))


@pytest.mark.parametrize("path", MODULES, ids=[_name(p) for p in MODULES])
def test_imports_point_down(path: Path) -> None:
    me = _name(path)
    mine = _rank(me)
    up = []
    for line, target in _imports(path):
        if target == "keizoku" or not target.startswith("keizoku."):
            continue
        other = target.removeprefix("keizoku.")
        if _rank(other) > mine:
            up.append(f"line {line}: keizoku.{other} (layer {_rank(other)} > {mine})")
    assert not up, f"keizoku.{me} climbs a layer: " + "; ".join(up)


def test_only_the_cli_imports_typer_and_only_the_registry_imports_mlflow() -> None:
    wrong = []
    for path in MODULES:
        me = _name(path)
        for line, target in _imports(path):
            top = target.split(".")[0]
            if top == "typer" and not me.startswith("cli"):
                wrong.append(f"keizoku.{me}:{line} imports typer")
            if top == "mlflow" and not me.startswith("registry"):
                wrong.append(f"keizoku.{me}:{line} imports {target}")
    assert not wrong, "; ".join(wrong)


def test_the_layer_rule_catches_a_climb(tmp_path: Path) -> None:
    """The check itself can fail: a training module importing serving is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from keizoku.serving.app import create_app\n")
    targets = [t for _, t in _imports(bad)]
    assert targets == ["keizoku.serving.app"]
    assert _rank("serving.app") > _rank("training.search")
