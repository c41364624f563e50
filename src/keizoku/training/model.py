"""``KeizokuModel``: the fitted feature encoder(s), estimator(s) and schema, as one object.

This is what gets registered and served. It scores a DataFrame (batch) or plain
records (serving fast path) and returns the same numbers either way.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.features.encoder import TabularEncoder

__all__ = [
    "KeizokuModel",
    "Member",
    "apply_temperature",
    "fit_temperature",
    "lightgbm_options",
    "raw_predict",
    "serving_mode",
    "thread_pools",
]


SMALL_BATCH = 1000  # rows below which LightGBM predicts on one thread


def serving_mode(estimator: Any) -> Any:
    """Score one row on one thread: process pools cost more than they save per request."""
    if hasattr(estimator, "n_jobs") and not hasattr(estimator, "booster_"):
        try:
            estimator.set_params(n_jobs=1)
        except ValueError:
            pass
    return estimator


def lightgbm_options(estimator: Any, rows: int) -> dict[str, Any]:
    """How a fitted LightGBM model's booster is called for ``rows`` rows: with the trees up
    to its best iteration (when early stopping recorded one; else all), and on one thread
    for a few rows (OpenMP start-up on a busy machine costs tens of ms)."""
    threads = {"num_threads": 1} if rows < SMALL_BATCH else {}
    return {"num_iteration": getattr(estimator, "best_iteration_", None) or None, **threads}


_pools: tuple[int, Any] | None = None  # (modules imported when found, ThreadpoolController)


def thread_pools() -> Any:
    """threadpoolctl's controller of the loaded OpenMP/BLAS libraries, found again only after
    a new import (a native library arrives with its module): finding them scans every loaded
    library, ~4 ms a call, and a search limits threads once per fold."""
    global _pools
    from threadpoolctl import ThreadpoolController

    imported = len(sys.modules)
    if _pools is None or _pools[0] != imported:
        _pools = (imported, ThreadpoolController())
    return _pools[1]


def _few_rows_on_one_thread(estimator: Any, rows: int) -> AbstractContextManager[Any]:
    """One OpenMP thread for scikit-learn's HistGradientBoosting on fewer than
    ``SMALL_BATCH`` rows (the calling thread's setting, restored after).

    It predicts each tree in a parallel region over the rows, on every core: on a busy
    2-core machine one row through 300 trees x 3 classes took 185 ms, 7.6 ms on one
    thread. Each row is one thread's work, so the predictions are the same.
    """
    if rows < SMALL_BATCH and type(estimator).__name__.startswith("HistGradientBoosting"):
        limited: AbstractContextManager[Any] = thread_pools().limit(limits=1, user_api="openmp")
        return limited
    return nullcontext()


def raw_predict(estimator: Any, X: np.ndarray, task: str) -> np.ndarray:
    """Probabilities (classification, shape n×k) or values (regression), on the fast path."""
    booster = getattr(estimator, "booster_", None)
    if booster is not None:  # LightGBM: skip the sklearn wrapper's validation
        out = booster.predict(X, **lightgbm_options(estimator, X.shape[0]))
        if task == "regression":
            return np.asarray(out, dtype=float)
        out = np.asarray(out, dtype=float)
        return np.column_stack([1 - out, out]) if out.ndim == 1 else out
    kwargs: dict[str, Any] = {}
    if type(estimator).__module__.startswith("catboost") and X.shape[0] < SMALL_BATCH:
        kwargs["thread_count"] = 1  # a fitted CatBoost model's own setting cannot change
    with _few_rows_on_one_thread(estimator, X.shape[0]):
        if task == "regression":
            return np.asarray(estimator.predict(X, **kwargs), dtype=float)
        return np.asarray(estimator.predict_proba(X, **kwargs), dtype=float)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities rescaled as ``softmax(log(p) / T)``: T > 1 softens, T < 1 sharpens."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, 1e-15, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def fit_temperature(y: np.ndarray, proba: np.ndarray, min_gain: float = 1e-3) -> float:
    """The temperature that minimises the log loss of out-of-fold ``proba`` (class codes
    ``y``), or 1.0 when it lowers the log loss by less than ``min_gain`` (relative)."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(y))
    y = np.asarray(y, dtype=int)

    def loss(t: float) -> float:
        return float(-np.mean(np.log(np.clip(apply_temperature(proba, t)[rows, y], 1e-15, 1))))

    base = loss(1.0)
    best = minimize_scalar(loss, bounds=(0.2, 5.0), method="bounded", options={"xatol": 1e-3})
    t = float(best.x)
    return round(t, 4) if loss(t) < base * (1 - min_gain) else 1.0


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
    temperature: float = 1.0  # classifier calibration (``apply_temperature``); 1.0: none

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.schema.features]

    def _combine(self, encode: Any) -> np.ndarray:
        """The members' weighted mean (then calibration); members that share an encoder
        (the fold models of a bag) share one call of ``encode(encoder)``."""
        encoded: dict[int, np.ndarray] = {}
        mixed: Any = 0.0
        for m in self.members:
            X = encoded.get(id(m.encoder))
            if X is None:
                X = encoded[id(m.encoder)] = encode(m.encoder)
            out = raw_predict(m.estimator, X, self.task)
            mixed = out if len(self.members) == 1 else mixed + m.weight * out
        if len(self.members) > 1:
            mixed = mixed / sum(m.weight for m in self.members)
        temperature = getattr(self, "temperature", 1.0)  # models pickled before 0012
        if self.task != "regression" and temperature != 1.0:
            mixed = apply_temperature(mixed, temperature)
        return np.asarray(mixed)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (n×k) for classifiers, values (n) for regression."""
        self.schema.check_frame(frame)
        return self._combine(lambda enc: enc.transform(frame))

    def predict_raw_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Like ``predict_raw`` but from plain dicts, without pandas."""
        return self._combine(lambda enc: enc.transform_records(records))

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
