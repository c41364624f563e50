"""Ray is an optional extra: without it, --ray is one line naming the extra (exit 7), and
only keizoku.distributed.cluster imports ray. No cluster needed."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

from kzsupport import KEIZOKU_EXE, REPO


def test_predict_ray_without_the_extra_names_it(tmp_path: Path) -> None:
    # A ray package that cannot be imported, first on the path: as on a machine without it.
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    path = os.pathsep.join(p for p in (str(fake.parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "KEIZOKU_HOME": str(tmp_path / ".keizoku")}
    args = ["predict", "x.parquet", "--model", "m", "-o", "out.parquet", "--ray", "auto"]
    res = subprocess.run(
        [KEIZOKU_EXE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 7, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'keizoku[ray]'" in lines[0]
    assert not (tmp_path / "out.parquet").exists()


def test_only_the_cluster_module_imports_ray() -> None:
    src = REPO / "src" / "keizoku"
    importers = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require_extra":
                names = [str(a.value) for a in node.args[:1] if isinstance(a, ast.Constant)]
            if any(n == "ray" or n.startswith("ray.") for n in names):
                importers.append(str(path.relative_to(src)))
    assert sorted(set(importers)) == ["distributed/cluster.py"]
