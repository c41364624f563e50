"""Shared test seams: a fresh KEIZOKU_HOME, the CLI as a user runs it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, CliResult


def pytest_configure(config: pytest.Config) -> None:
    # Nothing a test does may touch the developer's ./.keizoku.
    os.environ["KEIZOKU_HOME"] = tempfile.mkdtemp(prefix="keizoku-test-home-")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def keizoku_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".keizoku"
    monkeypatch.setenv("KEIZOKU_HOME", str(home))
    return home


@pytest.fixture
def cli(tmp_path: Path, keizoku_home: Path):  # type: ignore[no-untyped-def]
    """Run ``keizoku ARGS`` in a subprocess, in ``tmp_path``, as a user would."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
        env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(keizoku_home)}
        proc = subprocess.run(
            [KEIZOKU_EXE, *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc)

    return run
