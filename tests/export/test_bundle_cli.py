"""The bundle outside keizoku: the real ``keizoku export`` executable and its exit codes, the
runner in a fresh virtual environment with only onnxruntime and numpy, tampered files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export_support import Models, bare_env, lean_runner_python, need_onnx_extra, run_runner
from kzsupport import KEIZOKU_EXE

need_onnx_extra()


def keizoku(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def bundle(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LightGBM model exported by the real executable; rows for its parity in a CSV."""
    root = tmp_path_factory.mktemp("cli")
    models.frame("binary").to_csv(root / "rows.csv", index=False)
    ref = models.ref("binary", "lightgbm")
    done = keizoku("export", ref, "--format", "onnx", "-o", "bundle", "--data", "rows.csv",
                   "--json", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parity"]["passed"] and result["folder"].endswith("bundle")
    return root / "bundle"


def test_models_shows_the_verified_export(bundle: Path) -> None:
    done = keizoku("models", "exp-binary", "--json", cwd=bundle.parent)
    rows = {r["version"]: r for r in json.loads(done.stdout)}
    exported = [v for v, r in rows.items() if r["export"] == ["onnx"]]
    assert len(exported) == 1 and len(rows) >= 1
    table = keizoku("models", "exp-binary", cwd=bundle.parent)
    assert "export" in table.stdout and "onnx" in table.stdout


def test_exit_codes_of_bad_exports(models: Models, bundle: Path) -> None:
    root = bundle.parent
    missing = keizoku("export", "nope", "-o", "b2", "--data", "rows.csv", cwd=root)
    assert missing.returncode == 3 and "nope" in missing.stderr
    fmt = keizoku("export", "exp-binary:1", "--format", "tflite", "-o", "b2", cwd=root)
    assert fmt.returncode == 2 and "--format 'tflite'" in fmt.stderr
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("keep me")
    taken = keizoku("export", "exp-binary:1", "-o", "mine", "--data", "rows.csv", cwd=root)
    assert taken.returncode == 2 and "not an export bundle" in taken.stderr
    assert (root / "mine" / "notes.txt").read_text() == "keep me"
    no_rows = keizoku("export", "exp-binary:1", "-o", "b3", cwd=root)
    assert no_rows.returncode == 2 and "--data FILE" in no_rows.stderr
    quant = keizoku("export", "exp-binary:1", "-o", "b4", "--data", "rows.csv",
                    "--quantize", "int8", cwd=root)  # fmt: skip
    assert quant.returncode == 2 and "lightgbm" in quant.stderr


@pytest.fixture(scope="module")
def lean_python() -> Path:
    """A fresh venv with only numpy and onnxruntime (built once per test run)."""
    return lean_runner_python()


def test_the_runner_needs_only_numpy_and_onnxruntime(
    lean_python: Path, bundle: Path, models: Models
) -> None:
    for absent in ("pandas", "sklearn", "lightgbm", "keizoku"):
        probe = subprocess.run([str(lean_python), "-c", f"import {absent}"], env=bare_env(),
                               capture_output=True)  # fmt: skip
        assert probe.returncode != 0, f"{absent} is importable in the lean venv"
    frame = models.frame("binary").drop(columns=["target"]).head(3)
    rows = json.loads(frame.to_json(orient="records"))
    (bundle.parent / "rows.json").write_text(json.dumps(rows))
    done = run_runner(lean_python, bundle, str(bundle.parent / "rows.json"))
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    from keizoku.registry import load_model

    model = load_model("exp-binary:" + str(_version(bundle)))
    assert [a["prediction"] for a in answers] == model.predict(frame)
    for a, p in zip(answers, model.predict_raw(frame)[:, 1], strict=True):
        assert a["probabilities"][(model.classes or [])[1]] == pytest.approx(p, abs=1e-5)
    bad = bundle.parent / "bad.json"
    bad.write_text(json.dumps({**rows[0], "band": "huge"}))
    refused = run_runner(lean_python, bundle, str(bad))
    assert refused.returncode == 2 and "field 'band'" in refused.stderr
    allowed = run_runner(lean_python, bundle, str(bad), "--allow-unseen")
    assert allowed.returncode == 0 and "prediction" in json.loads(allowed.stdout)


def _version(bundle: Path) -> int:
    return int(json.loads((bundle / "manifest.json").read_text())["model"].split(":")[1])


@pytest.mark.parametrize("target", ["model.onnx", "schema.json", "runner.py"])
def test_a_tampered_bundle_is_refused(bundle: Path, tmp_path: Path, target: str) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with open(copy / target, "ab") as fh:
        fh.write(b"\n# changed\n" if target != "model.onnx" else b"\x00")
    rows = copy.parent / "row.json"
    rows.write_text("{}")
    done = run_runner(Path(sys.executable), copy, str(rows))
    assert done.returncode == 5
    assert f"file '{target}' has sha256" in done.stderr and "Export it again" in done.stderr


def test_a_parity_failure_exits_5_shows_the_differences_and_writes_nothing(
    bundle: Path, registry_home: Path
) -> None:
    from keizoku.registry import get_version

    root = bundle.parent
    ref = f"exp-binary:{_version(bundle)}"
    before = get_version(ref).tags["keizoku.export.onnx"]
    artifacts = sorted(map(str, registry_home.rglob("parity.json")))  # the runs' export/onnx/
    assert artifacts
    done = keizoku("export", ref, "-o", "tight", "--data", "rows.csv", "--tolerance", "0",
                   cwd=root)  # fmt: skip
    assert done.returncode == 5, done.stderr
    message = " ".join(done.stderr.split())
    assert "failed its parity check" in message and "(tolerance 0)" in message
    assert "Largest: row " in message and "registered [" in message and "vs ONNX [" in message
    assert "Nothing was written" in message
    assert not (root / "tight").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".tight-")]  # no temporary left
    assert get_version(ref).tags["keizoku.export.onnx"] == before  # nothing recorded
    assert sorted(map(str, registry_home.rglob("parity.json"))) == artifacts
    loose = keizoku("export", ref, "-o", "tight", "--data", "rows.csv", "--tolerance", "1",
                    cwd=root)  # fmt: skip
    assert loose.returncode == 2 and "--tolerance 1.0 is out of range" in loose.stderr
