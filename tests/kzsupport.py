"""Helpers shared by tests (importable as ``kzsupport``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path:
    """The workplace's shared data sets (absent for users outside it)."""
    env = os.environ.get("KEIZOKU_SHARED_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def need_shared(relative: str) -> Path:
    path = shared_datasets() / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data sets exist only in the keizoku workplace")
    return path


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
