"""``KeizokuModel``: the fitted feature encoder(s), estimator(s) and schema, as one object.

This is what gets registered and served. It scores a DataFrame (batch) or plain
records (serving fast path) and returns the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.features.encoder import TabularEncoder

__all__ = ["KeizokuModel", "Member", "raw_predict", "serving_mode"]


def serving_mode(estimator: Any) -> Any:
    """Score one row on one thread: process pools cost more than they save per request."""
    if hasattr(estimator, "n_jobs") and not hasattr(estimator, "booster_"):
        try:
            estimator.set_params(n_jobs=1)
        except ValueError:
            pass
    return estimator


def raw_predict(estimator: Any, X: np.ndarray, task: str) -> np.ndarray:
    """Probabilities (classification, shape n×k) or values (regression), on the fast path."""
    booster = getattr(estimator, "booster_", None)
    if booster is not None:  # LightGBM: skip the sklearn wrapper's validation
        out = booster.predict(X, num_iteration=getattr(estimator, "best_iteration_", None) or None)
        if task == "regression":
            return np.asarray(out, dtype=float)
        out = np.asarray(out, dtype=float)
        return np.column_stack([1 - out, out]) if out.ndim == 1 else out
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=float)
    return np.asarray(estimator.predict_proba(X), dtype=float)


@dataclass
class Member:
    """One fitted model of the final ensemble (a single model is an ensemble of one)."""

    family: str
    params: dict[str, Any]
    encoder: TabularEncoder
    estimator: Any
    weight: float = 1.0


@dataclass
class KeizokuModel:
    """A fitted, self-contained model: schema + members (+ weights) + class labels."""

    schema: Schema
    task: str
    members: list[Member]
    classes: list[Any] | None = None
    metric: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.schema.features]

    def _combine(self, outs: list[np.ndarray]) -> np.ndarray:
        total = sum(m.weight for m in self.members)
        mixed = np.zeros_like(outs[0])
        for member, out in zip(self.members, outs, strict=True):
            mixed = mixed + member.weight * out
        return np.asarray(mixed / total)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (n×k) for classifiers, values (n) for regression."""
        self.schema.check_frame(frame)
        outs = [
            raw_predict(m.estimator, m.encoder.transform(frame), self.task) for m in self.members
        ]
        return self._combine(outs)

    def predict_raw_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Like ``predict_raw`` but from plain dicts, without pandas."""
        outs = [
            raw_predict(m.estimator, m.encoder.transform_records(records), self.task)
            for m in self.members
        ]
        return self._combine(outs) if len(outs) > 1 else outs[0]

    def labels(self, raw: np.ndarray) -> list[Any]:
        if self.task == "regression":
            return list(raw.tolist())
        classes = self.classes or list(range(raw.shape[1]))
        return [classes[i] for i in raw.argmax(axis=1)]

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        return self.labels(self.predict_raw(frame))

    def predict_records(self, records: list[dict[str, Any]]) -> list[Any]:
        return self.labels(self.predict_raw_records(records))

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus ``prediction`` and, for classifiers, a ``proba_<class>`` per class."""
        raw = self.predict_raw(frame)
        out = frame.copy()
        out["prediction"] = self.labels(raw)
        if self.task != "regression":
            for j, cls in enumerate(self.classes or []):
                out[f"proba_{cls}"] = raw[:, j]
        return out
