"""Helpers shared by tests (importable as ``kzsupport``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real console script, as a user runs it (exit codes are an API: test them here).
KEIZOKU_EXE = str(Path(sys.executable).with_name("keizoku"))


def shared_datasets() -> Path:
    """The workplace's shared data sets (absent for users outside it)."""
    env = os.environ.get("KEIZOKU_SHARED_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def need_shared(relative: str) -> Path:
    path = shared_datasets() / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data sets exist only in the keizoku workplace")
    return path


def json_records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: Python scalars, ``None`` for missing values."""
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


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


def log_prediction(
    log: Any,
    *,
    request_id: str,
    ts: float,
    model: str,
    version: int,
    variant: str,
    inputs: dict[str, Any],
    prediction: Any,
    latency_ms: float = 1.0,
    shadow: bool = False,
    entity_id: Any = None,
) -> None:
    """Append one prediction to a real ``PredictionLog`` as the server does (a class label)."""
    from keizoku.prediction import Prediction

    probs = {str(prediction): 1.0}  # a classifier sure of its label
    pred = Prediction(prediction, probs, None, version, variant, request_id, entity_id)
    log.append(pred, ts=ts, model=model, inputs=inputs, latency_ms=latency_ms, shadow=shadow)
