"""SIGINT/SIGTERM during ``keizoku train`` (issue 10, item 10): exit 130/143, nothing registered.

A real ``keizoku train --budget 60s`` on penguins is stopped once its search has logged
a trial; the run must end FAILED, no version may exist, and the shell sees the code.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from keizoku.errors import ExitCode

# Exit codes and signals end to end: the real executable, never the test fork server
# (which runs only the commands around the signalled train: `init` and `models`).
from kzsupport import KEIZOKU_EXE as SETUP_EXE
from kzsupport import REAL_KEIZOKU_EXE as KEIZOKU_EXE
from kzsupport import REPO

PENGUINS = REPO / "examples" / "data" / "penguins.csv"
pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(home)}


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return list(conn.execute(sql))
    except sqlite3.OperationalError:  # the schema is still being created
        return []


TRAIN_RUNS = (
    "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
    "WHERE t.key = 'keizoku.kind' AND t.value = '{kind}'"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signals")
    init = subprocess.run(
        [SETUP_EXE, "init", str(PENGUINS), "--target", "species"],
        cwd=root, env=_env(root / "init-home"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    return root


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "aborted"),
        (signal.SIGTERM, ExitCode.TERMINATED, "aborted (SIGTERM)"),
    ],
)
def test_a_signal_during_train_stops_it_with_nothing_registered(
    project: Path, tmp_path: Path, signum: int, code: int, said: str
) -> None:
    home = tmp_path / "home"
    db = home / "mlflow.db"
    proc = subprocess.Popen(
        [KEIZOKU_EXE, "train", "--budget", "60s", "--family", "lightgbm"],
        cwd=project, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _query(db, TRAIN_RUNS.format(kind="trial")):  # the search is running
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial was logged within 120 s"
            time.sleep(0.2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == said
    assert "Traceback" not in err
    assert _query(db, TRAIN_RUNS.format(kind="train")) == [("FAILED",)]
    assert _query(db, "SELECT name, version FROM model_versions") == []
    models = subprocess.run(
        [SETUP_EXE, "models"], cwd=project, env=_env(home), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert models.returncode == 0, models.stderr
    assert "No registered models yet" in models.stdout
