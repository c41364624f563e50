"""Each command imports only what it uses (docs/decisions/0008-fast-tests.md, fourth pass).

Every ``keizoku`` process pays for its imports before it works (MLflow ~2 s of CPU,
scikit-learn ~1.5 s, pandas ~0.5 s), and the suite starts hundreds of them. These tests
run the real executable and read which modules it imported (``PYTHONPROFILEIMPORTTIME``
lists each one on stderr; only the names are read, never the times), so an eager import
added back at the top of a module fails here. The positive checks (``predict`` loads
scikit-learn to unpickle its model, ``promote`` loads MLflow to write the alias) show that
the listing sees a heavy package when one is imported.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, REPO, log_prediction
from rollout_support import MODEL, trained_copy

# Never needed to parse arguments, print help or read the registry.
HEAVY = {"mlflow", "sklearn", "scipy", "torch", "duckdb", "lightgbm", "xgboost", "pandas"}


def _packages(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def imported(args: list[str], cwd: Path, home: Path) -> set[str]:
    """The top-level packages that ``keizoku ARGS`` imported (it must succeed)."""
    return listed(args, cwd, home)[0]


def listed(args: list[str], cwd: Path, home: Path) -> tuple[set[str], str]:
    """(The top-level packages that ``keizoku ARGS`` imported, its stdout); it must succeed."""
    packages, out, _ = exited(0, args, cwd, home)
    return packages, out


def exited(code: int, args: list[str], cwd: Path, home: Path) -> tuple[set[str], str, str]:
    """(The top-level packages that ``keizoku ARGS`` imported, its stdout, the rest of its
    stderr); it must exit ``code``."""
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    proc = subprocess.run([KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    lines = proc.stderr.splitlines()
    timed = [line for line in lines if line.startswith("import time:")]
    said = "\n".join(line for line in lines if not line.startswith("import time:"))
    assert proc.returncode == code, f"keizoku {' '.join(args)}: {proc.stdout}\n{said}"
    assert timed, "no import listing on stderr: PYTHONPROFILEIMPORTTIME was not honoured"
    return _packages([line.rsplit("|", 1)[1].strip() for line in timed[1:]]), proc.stdout, said


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained penguins project (peng v1 champion, v2 challenger), copied for this file."""
    return trained_copy(tmp_path_factory.mktemp("imports"))


def modules_of(module: str) -> list[str]:
    """Every module a fresh interpreter has loaded once it imported ``module``."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return list(json.loads(out.stdout))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    loaded = _packages(modules_of("keizoku.cli"))
    assert "typer" in loaded  # the listing is real
    assert loaded & HEAVY == set()


def test_reading_a_console_session_loads_neither_fastapi_nor_the_pages() -> None:
    """A process that checks a session cookie (a second server of the store, in
    tests/conformance/test_state_store.py) needs Starlette and the keys, not the routes."""
    modules = modules_of("keizoku.console.session")
    assert "starlette" in _packages(modules) and "keizoku.auth" in modules
    assert "fastapi" not in _packages(modules) and "keizoku.console.pages" not in modules
    assert _packages(modules) & HEAVY == set()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["train", "--help"]])
def test_help_and_version_load_no_heavy_package(args: list[str], tmp_path: Path) -> None:
    assert imported(args, tmp_path, tmp_path / ".keizoku") & HEAVY == set()


def test_registry_reads_load_neither_mlflow_nor_pandas(project: Path) -> None:
    home = project / ".keizoku"
    for args in (["models"], ["status", MODEL], ["history", MODEL]):
        assert imported(args, project, home) & HEAVY == set(), args


def test_a_misspelled_model_is_refused_naming_the_closest_without_pandas(project: Path) -> None:
    """The "did you mean" of a missing model (``keizoku.names.closest``) needs difflib:
    the error loads no data library (it loaded pandas with keizoku.data.schema, ~0.13 s)."""
    packages, _, said = exited(3, ["models", "pengu"], project, project / ".keizoku")
    assert "No registered model named 'pengu'; did you mean 'peng'?" in said
    assert packages & (HEAVY | {"numpy", "pyarrow", "yaml"}) == set()


def test_a_first_read_in_a_new_home_loads_neither_mlflow_nor_pandas(tmp_path: Path) -> None:
    """A new home's store is a copy of the cached migrated one (keizoku.registry.seed):
    the first ``keizoku models`` there copies it and reads it without MLflow."""
    from keizoku.registry import backend, seed

    backend.prepare(f"sqlite:///{tmp_path / 'first.db'}")  # fills the cache if it is empty
    assert seed.usable(seed.cache_path())
    home = tmp_path / "new" / ".keizoku"
    packages, out = listed(["models"], tmp_path, home)
    assert packages & HEAVY == set()
    assert "No registered models yet" in out and (home / "mlflow.db").is_file()


def test_init_reads_the_table_without_scikit_learn_or_mlflow(tmp_path: Path) -> None:
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", tmp_path)
    args = ["init", "penguins.csv", "--target", "species"]
    loaded = imported(args, tmp_path, tmp_path / ".keizoku")
    assert "pandas" in loaded
    assert loaded & {"mlflow", "sklearn", "scipy", "torch", "duckdb", "lightgbm"} == set()


def test_predict_reads_the_registry_without_mlflow(project: Path) -> None:
    args = ["predict", "penguins.csv", "-m", MODEL, "-o", "scored.csv"]
    loaded = imported(args, project, project / ".keizoku")
    assert "sklearn" in loaded  # unpickling the model needs it
    assert "mlflow" not in loaded


def test_promote_writes_with_mlflow_and_checks_evidence_without_scikit_learn(
    project: Path,
) -> None:
    loaded = imported(["promote", MODEL, "2"], project, project / ".keizoku")
    assert "mlflow" in loaded  # the alias is written through MLflow, the only writer
    assert loaded & {"sklearn", "torch", "duckdb", "lightgbm"} == set()


def _log_penguins(project: Path, rows: int = 300) -> None:
    """``rows`` of penguins.csv logged as served predictions of peng v1 in the last hour."""
    import time

    import pandas as pd

    from keizoku.monitoring.log import PredictionLog

    table = pd.read_csv(project / "penguins.csv").sample(rows, replace=True, random_state=0)
    now = time.time()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(project / ".keizoku"))
        with PredictionLog(flush_interval_s=3600) as log:
            for i, rec in enumerate(table.to_dict("records")):
                label = rec.pop("species")
                inputs = {k: (None if v != v else v) for k, v in rec.items()}
                log_prediction(
                    log, request_id=f"r{i}", ts=now - 600 + i, model=MODEL, version=1,
                    variant="champion", inputs=inputs, prediction=label,
                )  # fmt: skip


def test_monitor_over_the_log_runs_the_domain_classifier_without_scikit_learn(
    project: Path,
) -> None:
    """The multivariate check (on by default) runs in numpy: the log path imports neither
    scikit-learn nor scipy nor MLflow."""
    _log_penguins(project)
    args = ["monitor", MODEL, "--version", "1", "--since", "1h", "--json"]
    loaded, out = listed(args, project, project / ".keizoku")
    report = json.loads(out)
    assert report["multivariate"]["skipped"] is None  # the classifier did run
    assert math.isfinite(report["multivariate"]["auc"])
    assert "duckdb" in loaded
    assert loaded & {"mlflow", "sklearn", "scipy", "torch", "lightgbm"} == set()


def test_log_compaction_merges_parquet_without_pandas(tmp_path: Path) -> None:
    """``keizoku log compact`` (and the loop's compaction) reads and writes the log with
    DuckDB and pyarrow: the prediction log's modules import no pandas."""
    from keizoku.monitoring.log import PredictionLog

    home = tmp_path / ".keizoku"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(home))
        with PredictionLog(flush_interval_s=3600) as log:  # closing waits for the folding
            for i in range(4):
                log_prediction(
                    log, request_id=f"r{i}", ts=1_700_000_000.0 + i, model=MODEL, version=1,
                    variant="champion", inputs={"x": 1.0}, prediction="Adelie",
                )  # fmt: skip
                log.flush()
    args = ["log", "compact", MODEL, "--older-than", "0s", "--grace", "0s", "--json"]
    loaded, out = listed(args, tmp_path, home)
    assert json.loads(out)["results"][0]["replaced"] == 4
    assert "duckdb" in loaded  # the listing sees what compaction uses
    assert loaded & {"pandas", "mlflow", "sklearn", "scipy", "torch", "lightgbm"} == set()


def test_train_of_lightgbm_and_xgboost_explains_them_without_shap(tmp_path: Path) -> None:
    """LightGBM and XGBoost compute their own TreeSHAP (``pred_contrib``): a train that
    searches only them writes tree SHAP importance and never imports shap (~2 s of CPU)."""
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", tmp_path)
    home = tmp_path / ".keizoku"
    env = {**os.environ, "KEIZOKU_HOME": str(home)}  # init is not under test: forked
    init = subprocess.run(
        [KEIZOKU_EXE, "init", "penguins.csv", "--target", "species"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    args = ["train", "--family", "lightgbm", "--family", "xgboost", "--max-trials", "2",
            "--budget", "60s"]  # fmt: skip
    loaded = imported(args, tmp_path, home)
    assert {"lightgbm", "xgboost"} <= loaded  # both were searched
    assert "shap" not in loaded
    (found,) = home.rglob("importance.json")
    members = json.loads(found.read_text())["members"]
    assert {m["family"] for m in members} <= {"lightgbm", "xgboost"}
    assert all(m["method"].startswith("mean |SHAP|") for m in members), members
