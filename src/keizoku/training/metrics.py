"""Metrics, each oriented so that higher is better inside the search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from keizoku.data.schema import Task
from keizoku.errors import UserInputError

__all__ = ["Metric", "get_metric", "default_metric", "METRICS", "evaluate_all"]


@dataclass(frozen=True)
class Metric:
    """A metric: its name, whether larger is better, and what prediction it needs."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    needs: str  # "proba" | "label" | "value"
    tasks: tuple[str, ...]

    def __call__(self, y: np.ndarray, pred: np.ndarray) -> float:
        return float(self.fn(y, pred))

    def oriented(self, y: np.ndarray, pred: np.ndarray) -> float:
        """The score the search maximises (losses negated)."""
        value = self(y, pred)
        return value if self.greater_is_better else -value


def _labels(pred: np.ndarray) -> np.ndarray:
    return pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(int)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if p.ndim == 2 and p.shape[1] > 2:
        return float(
            skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=range(p.shape[1]))
        )
    return float(skm.roc_auc_score(y, p[:, 1] if p.ndim == 2 else p))


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    p = np.clip(p, 1e-15, 1 - 1e-15)
    loss = _logloss_of_codes(y, p)
    return float(skm.log_loss(y, p, labels=range(p.shape[1]))) if loss is None else loss


_EPS = float(np.finfo(np.float64).eps)


def _logloss_of_codes(y: np.ndarray, p: np.ndarray) -> float | None:
    """scikit-learn's ``log_loss(y, p, labels=range(k))``, the same float computed the same
    way, without its input checks (about 1 ms a call; the search, the evidence and the gates
    call it hundreds of times), for the case they pass: class codes 0..k-1 and float64
    rows of k probabilities summing to 1. None otherwise: scikit-learn then checks the
    input, warns or raises as it does.

    scikit-learn one-hot encodes ``y``, clips ``p`` to [eps, 1 - eps] and averages
    ``-sum(xlogy(onehot, p))`` over the rows: each row's sum is its one non-zero term,
    ``log`` of the true class's probability.
    """
    y = np.asarray(y)
    n, k = p.shape
    if (
        p.dtype != np.float64
        or y.shape != (n,)
        or y.dtype.kind not in "iu"
        or n == 0
        or k < 2
        or y.min() < 0
        or y.max() >= k
        or not np.isfinite(p).all()
        or not np.isclose(p.sum(axis=1), 1.0, rtol=np.sqrt(_EPS), atol=0.0).all()
    ):
        return None
    picked = np.clip(p[np.arange(n), y], _EPS, 1 - _EPS)
    return float(np.average(-np.log(picked)))


def _avg(y: np.ndarray) -> str:
    return "binary" if len(np.unique(y)) <= 2 else "macro"


CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {
    "roc_auc": Metric("roc_auc", _auc, True, "proba", CLS),
    "log_loss": Metric("log_loss", _logloss, False, "proba", CLS),
    "accuracy": Metric(
        "accuracy", lambda y, p: skm.accuracy_score(y, _labels(p)), True, "proba", CLS
    ),
    "balanced_accuracy": Metric(
        "balanced_accuracy",
        lambda y, p: skm.balanced_accuracy_score(y, _labels(p)),
        True,
        "proba",
        CLS,
    ),
    "f1": Metric(
        "f1", lambda y, p: skm.f1_score(y, _labels(p), average=_avg(y)), True, "proba", CLS
    ),
    "recall": Metric(
        "recall", lambda y, p: skm.recall_score(y, _labels(p), average=_avg(y)), True, "proba", CLS
    ),
    "precision": Metric(
        "precision",
        lambda y, p: skm.precision_score(y, _labels(p), average=_avg(y), zero_division=0),
        True,
        "proba",
        CLS,
    ),
    "rmse": Metric(
        "rmse",
        lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))),
        False,
        "value",
        ("regression",),
    ),
    "mae": Metric("mae", skm.mean_absolute_error, False, "value", ("regression",)),
    "r2": Metric("r2", skm.r2_score, True, "value", ("regression",)),
}

DEFAULTS: dict[str, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def default_metric(task: Task) -> str:
    return DEFAULTS[task]


def get_metric(name: str | None, task: Task) -> Metric:
    name = name or default_metric(task)
    metric = METRICS.get(name)
    if metric is None:
        raise UserInputError(
            f"Unknown metric '{name}'. Choose one of: {', '.join(sorted(METRICS))} "
            "(spec key train.metric or --metric)."
        )
    if task not in metric.tasks:
        valid = [m for m, v in METRICS.items() if task in v.tasks]
        raise UserInputError(
            f"Metric '{name}' does not fit a {task} task. Choose one of: {', '.join(valid)}."
        )
    return metric


def evaluate_all(task: Task, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric that fits ``task``; a metric that cannot be computed is left out."""
    out: dict[str, float] = {}
    for name, metric in METRICS.items():
        if task not in metric.tasks:
            continue
        try:
            out[name] = metric(y, pred)
        except ValueError:
            continue
    return out
