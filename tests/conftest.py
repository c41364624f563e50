"""Shared test seams: a fresh KEIZOKU_HOME, the CLI as a user runs it, shared data sets."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Nothing a test does may touch the developer's ./.keizoku.
    os.environ["KEIZOKU_HOME"] = tempfile.mkdtemp(prefix="keizoku-test-home-")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def shared_datasets() -> Path:
    """The workplace's shared data sets (absent for users outside it)."""
    env = os.environ.get("KEIZOKU_SHARED_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def need_shared(relative: str) -> Path:
    path = shared_datasets() / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data sets exist only in the keizoku workplace")
    return path


@pytest.fixture
def keizoku_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".keizoku"
    monkeypatch.setenv("KEIZOKU_HOME", str(home))
    return home


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def text(self) -> str:
        """stdout + stderr with table borders dropped and whitespace collapsed (rich wraps)."""
        raw = (self.out + "\n" + self.err).translate(_BORDERS)
        return " ".join(raw.split())


_BORDERS = str.maketrans({ch: " " for ch in "│┃┏┓┗┛━┳┻╇┡┩└┘┴┬─╭╮╰╯┼┠┨┯┷╋║═╔╗╚╝"})


@pytest.fixture
def cli(tmp_path: Path, keizoku_home: Path):  # type: ignore[no-untyped-def]
    """Run ``keizoku ARGS`` in a subprocess, in ``tmp_path``, as a user would."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
        env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(keizoku_home)}
        proc = subprocess.run(
            [sys.executable, "-m", "keizoku.cli", *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc)

    return run
