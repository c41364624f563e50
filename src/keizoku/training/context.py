"""The training context: built once per ``train``, handed to every artifact builder.

:class:`TrainingData` is what the search sees: the rows that have a target, the
saved schema and the target encoded by the schema's :class:`~keizoku.data.labels.LabelCodec`.
:class:`TrainingContext` adds what the search found — the result, the out-of-fold
predictions aligned with the rows they cover, and the typed training info written
as ``training.json`` — so builders (reference statistics, evidence) never filter,
encode or align again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keizoku.data.ingest import fingerprint_frame
from keizoku.data.labels import LabelCodec
from keizoku.data.schema import Schema
from keizoku.errors import UserInputError

if TYPE_CHECKING:
    from keizoku.training.search import SearchResult

__all__ = ["TrainingContext", "TrainingData", "TrainingInfo", "encode_target"]


def encode_target(y: pd.Series, schema: Schema) -> tuple[np.ndarray, list[Any] | None]:
    """The target as the search sees it (class indices, or floats) and the classes."""
    codec = LabelCodec.from_schema(schema)
    return codec.encode(list(y), where=f"target '{schema.target}' value"), codec.classes


@dataclass(frozen=True)
class TrainingData:
    """The rows with a target (index 0..n-1), the schema, the encoded target."""

    frame: pd.DataFrame
    schema: Schema
    codec: LabelCodec
    y: np.ndarray
    data_sha256: str
    schema_sha256: str

    @classmethod
    def build(cls, frame: pd.DataFrame, schema: Schema) -> TrainingData:
        """Filter ``frame`` on the target and encode it; the hashes cover the given frame."""
        if schema.target is None or schema.task is None:
            raise UserInputError("The schema has no target: run `keizoku init DATA --target COL`.")
        if schema.task != "regression" and not schema.classes:
            raise UserInputError(
                f"The schema of target '{schema.target}' lists no classes for a "
                f"{schema.task} task. Run `keizoku init` again or add `classes:` to schema.yaml."
            )
        data_sha, schema_sha = fingerprint_frame(frame), schema.fingerprint()
        rows = frame[frame[schema.target].notna()].reset_index(drop=True)
        codec = LabelCodec.from_schema(schema)
        y = codec.encode(list(rows[schema.target]), where=f"target '{schema.target}' value")
        return cls(rows, schema, codec, y, data_sha, schema_sha)

    @property
    def task(self) -> str:
        return str(self.schema.task)


@dataclass(frozen=True)
class TrainingInfo:
    """``training.json``: what was trained, on what, how well."""

    project: str
    task: str
    target: str
    metric: str
    cv_score: float
    cv_std: float
    data_sha256: str
    schema_sha256: str
    elapsed_s: float
    n_trials: int
    max_trials: int | None
    members: list[dict[str, Any]]
    refit_on_all_rows: bool
    partial_cv: bool
    bagged: bool = False  # served as the average of fold models (decision 0012)
    temperature: float = 1.0  # classifier calibration; 1.0: none
    phases: dict[str, float] = field(default_factory=dict)  # seconds per search phase
    trained_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingContext:
    """Everything a builder of a version's artifacts needs, computed once."""

    data: TrainingData
    result: SearchResult
    info: TrainingInfo
    # Seconds the evidence's time-capped steps (learning curve, importance) may take in
    # all; None: their own caps. ``train`` sets what its budget has left after the search.
    evidence_s: float | None = None

    @classmethod
    def build(
        cls,
        project: str,
        data: TrainingData,
        result: SearchResult,
        evidence_s: float | None = None,
    ) -> TrainingContext:
        model = result.model
        info = TrainingInfo(
            project=project,
            task=data.task,
            target=str(data.schema.target),
            metric=result.metric.name,
            cv_score=float(result.cv_score),
            cv_std=float(result.cv_std),
            data_sha256=data.data_sha256,
            schema_sha256=data.schema_sha256,
            elapsed_s=float(result.elapsed_s),
            n_trials=len(result.trials),
            max_trials=result.max_trials,
            members=[
                {"family": m.family, "weight": m.weight, "params": m.params} for m in model.members
            ],
            refit_on_all_rows=bool(model.info.get("refit_on_all_rows", True)),
            partial_cv=bool(model.info.get("partial_cv", False)),
            bagged=bool(model.info.get("bagged", False)),
            temperature=float(model.info.get("temperature", 1.0)),
            phases={k: round(v, 3) for k, v in result.phases.items()},
        )
        return cls(data, result, info, evidence_s)

    @property
    def schema(self) -> Schema:
        return self.data.schema

    @property
    def oof_rows(self) -> np.ndarray:
        """Indices into ``data.frame`` of the rows the out-of-fold predictions cover."""
        rows = self.result.oof_rows
        return np.arange(len(self.data.frame)) if rows is None else np.asarray(rows)

    @property
    def oof(self) -> np.ndarray:
        """Out-of-fold predictions, one per row of :attr:`oof_frame`."""
        return np.asarray(self.result.oof)

    @property
    def oof_frame(self) -> pd.DataFrame:
        return self.data.frame.iloc[self.oof_rows].reset_index(drop=True)

    @property
    def oof_y(self) -> np.ndarray:
        return np.asarray(self.data.y[self.oof_rows])
