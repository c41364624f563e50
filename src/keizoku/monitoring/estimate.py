"""Confidence-based performance estimation (CBPE): the live metric before labels arrive.

A classifier's served probabilities say how often it should be right. Calibrated on
the out-of-fold predictions of the search (isotonic regression of the outcome on the
score, fitted at training and saved in ``reference.json``), they give each served row
an expected outcome ``q``, and the metric is computed on expected counts:

* binary: ``q = P(positive | score)``; accuracy = mean of ``q`` where the positive class
  is predicted and ``1 - q`` elsewhere; expected TP/FP/FN/TN give F1, precision, recall
  and balanced accuracy; ROC AUC is the AUC of the scores with each row counted as a
  positive with weight ``q`` and as a negative with weight ``1 - q``; log loss its
  expectation under ``q``;
* multiclass: ``q = P(the predicted class is right | top probability)``; accuracy is
  the mean of ``q`` (other multiclass metrics need the full probability vector and are
  not estimated).

The estimate holds while ``P(label | features)`` does not change (covariate shift: the
population moves, the concept does not); a concept shift shows only when labels arrive,
beside it. How well calibrated the probabilities are is measured at training (the
expected calibration error, ECE, of the raw and of the calibrated probabilities, the
latter cross-fitted on two halves of the out-of-fold rows) and said with every estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

__all__ = [
    "Calibration",
    "EstimatedPerformance",
    "fit_calibration",
    "estimate_metrics",
    "realised_metrics",
    "estimate_performance",
    "estimable",
    "weighted_auc",
    "ECE_LIMIT",
]

ECE_LIMIT = 0.05  # above this cross-fitted ECE the estimate is flagged as unreliable
ECE_BINS = 10
MIN_CALIBRATION_ROWS = 100
BINARY_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "balanced_accuracy",
                  "log_loss")  # fmt: skip


class Calibration(BaseModel):
    """The map from a served score to the chance of the outcome, fitted on OOF rows."""

    kind: str  # "binary": P(positive | score) | "confidence": P(right | top probability)
    x: list[float]  # isotonic knots: q = np.interp(score, x, y)
    y: list[float]
    n: int  # out-of-fold rows it was fitted on
    ece_raw: float  # expected calibration error of the model's own probabilities
    ece: float  # of the calibrated ones, cross-fitted (fit on one half, measured on the other)

    @property
    def calibrated(self) -> bool:
        return self.ece <= ECE_LIMIT and self.n >= MIN_CALIBRATION_ROWS

    def expected(self, score: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.interp(score, np.asarray(self.x), np.asarray(self.y))
        return out

    def note(self) -> str:
        """One sentence on how far the estimate can be trusted."""
        raw = f"the model's probabilities have ECE {self.ece_raw:.3f} on its out-of-fold rows"
        if self.n < MIN_CALIBRATION_ROWS:
            return (
                f"calibrated on only {self.n} out-of-fold rows (< {MIN_CALIBRATION_ROWS}): "
                "the estimate is rough"
            )
        if not self.calibrated:
            return (
                f"NOT well calibrated: after calibration ECE {self.ece:.3f} > {ECE_LIMIT:g} "
                f"({raw}): the estimate may be off by about that much"
            )
        return f"calibrated: ECE {self.ece:.3f} ≤ {ECE_LIMIT:g} after calibration ({raw})"


def _ece(p: np.ndarray, t: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-count bins of ``p``."""
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(bins, len(p))):
        total += len(part) * abs(float(t[part].mean()) - float(p[part].mean()))
    return total / len(p)


def _isotonic(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, t)
    return np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float)


def _outcome(oof: np.ndarray, y: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(score, outcome 0/1, kind) of out-of-fold predictions against their labels."""
    arr = np.asarray(oof, dtype=float)
    if task == "binary":
        s = arr[:, -1] if arr.ndim == 2 else arr
        return s, (np.asarray(y) == 1).astype(float), "binary"
    return arr.max(axis=1), (arr.argmax(axis=1) == np.asarray(y)).astype(float), "confidence"


def fit_calibration(oof: np.ndarray | None, y: np.ndarray | None, task: str) -> Calibration | None:
    """The calibration of a classifier's out-of-fold probabilities (None for a regression
    or without them)."""
    if oof is None or y is None or task not in ("binary", "multiclass"):
        return None
    arr = np.asarray(oof, dtype=float)
    if task == "multiclass" and arr.ndim != 2:
        return None
    s, t, kind = _outcome(arr, y, task)
    ok = np.isfinite(s)
    s, t = s[ok], t[ok]
    if len(s) < 2:
        return None
    x, q = _isotonic(s, t)
    rng = np.random.default_rng(0)
    half = rng.permutation(len(s)) < len(s) // 2
    crossed = np.empty(len(s))
    for fit, check in ((half, ~half), (~half, half)):
        if fit.sum() and check.sum():
            fx, fq = _isotonic(s[fit], t[fit])
            crossed[check] = np.interp(s[check], fx, fq)
    return Calibration(
        kind=kind,
        x=[round(float(v), 6) for v in x],
        y=[round(float(v), 6) for v in q],
        n=len(s),
        ece_raw=_ece(s, t),
        ece=_ece(crossed, t),
    )


def estimable(task: str, metric: str) -> bool:
    """Whether ``metric`` can be estimated from a ``task`` model's served scores."""
    return metric in BINARY_METRICS if task == "binary" else metric == "accuracy"


def _div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def weighted_auc(s: np.ndarray, q: np.ndarray) -> float:
    """ROC AUC of scores ``s``, each row a positive of weight ``q`` and a negative of weight
    ``1 - q``: the weighted share of (positive, negative) pairs ordered right, ties counting
    half (what ``sklearn.metrics.roc_auc_score`` gives with these weights; a test checks),
    in numpy: importing scikit-learn's metrics costs ``keizoku monitor`` 0.5-3 s. With
    0/1 weights it is the plain Mann-Whitney AUC (the domain classifier's); NaN when a
    class has no weight."""
    pos, neg = float(q.sum()), float((1 - q).sum())
    if pos <= 0 or neg <= 0:
        return float("nan")
    values, at = np.unique(s, return_inverse=True)
    p = np.bincount(at, weights=q, minlength=len(values))
    n = np.bincount(at, weights=1 - q, minlength=len(values))
    below = np.cumsum(n) - n  # negative weight at lower scores
    return float(np.sum(p * (below + 0.5 * n)) / (pos * neg))


def _binary(s: np.ndarray, q: np.ndarray, names: list[str]) -> dict[str, float]:
    """Metrics of scores ``s`` from (expected or realised) positive indicators ``q``."""
    pos = s > 0.5
    tp, fp = float(q[pos].sum()), float((1 - q[pos]).sum())
    fn, tn = float(q[~pos].sum()), float((1 - q[~pos]).sum())
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = _div(tp + tn, len(s))
        elif name == "f1":
            out[name] = _div(2 * tp, 2 * tp + fp + fn)
        elif name == "precision":
            out[name] = _div(tp, tp + fp)
        elif name == "recall":
            out[name] = _div(tp, tp + fn)
        elif name == "balanced_accuracy":
            out[name] = (_div(tp, tp + fn) + _div(tn, tn + fp)) / 2
        elif name == "roc_auc":
            out[name] = weighted_auc(s, q)
        elif name == "log_loss":
            c = np.clip(s, 1e-15, 1 - 1e-15)
            out[name] = float(-(q * np.log(c) + (1 - q) * np.log(1 - c)).mean())
    return out


def estimate_metrics(
    score: np.ndarray, calibration: Calibration, names: list[str]
) -> dict[str, float]:
    """The metrics ``names`` expected from served scores (binary: P(positive); multiclass:
    the top probability)."""
    s = np.asarray(score, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return {n: float("nan") for n in names}
    q = np.clip(calibration.expected(s), 0.0, 1.0)
    if calibration.kind == "binary":
        return _binary(s, q, names)
    return {n: float(q.mean()) for n in names if n == "accuracy"}


def realised_metrics(
    score: np.ndarray, outcome: np.ndarray, kind: str, names: list[str]
) -> dict[str, float]:
    """The same metrics from labels: ``outcome`` is 1 for a positive label (binary) or a
    right prediction (multiclass), computed with the same expected-count formulas."""
    s, t = np.asarray(score, dtype=float), np.asarray(outcome, dtype=float)
    ok = np.isfinite(s) & np.isfinite(t)
    s, t = s[ok], t[ok]
    if len(s) == 0:
        return {}
    if kind == "binary":
        return _binary(s, t, names)
    return {n: float(t.mean()) for n in names if n == "accuracy"}


@dataclass
class BucketEstimate:
    bucket: float
    n: int
    estimated: dict[str, float]
    n_labels: int = 0
    realised: dict[str, float] = field(default_factory=dict)


@dataclass
class EstimatedPerformance:
    """The live metric estimated from confidence, per time bucket, beside the labelled one."""

    metrics: list[str]
    n: int
    estimated: dict[str, float]
    training: dict[str, float]  # the training CV score of the model's metric, when estimated
    n_labels: int = 0
    realised: dict[str, float] = field(default_factory=dict)
    buckets: list[BucketEstimate] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    note: str = ""
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["buckets"] = [b.__dict__ for b in self.buckets]
        return out


def skipped_estimate(why: str) -> EstimatedPerformance:
    return EstimatedPerformance([], 0, {}, {}, note=why, skipped=why)


def estimate_performance(
    rows: pd.DataFrame,
    calibration: Calibration | None,
    task: str,
    metric: str,
    training: float,
    *,
    min_rows: int = 30,
) -> EstimatedPerformance:
    """CBPE over ``rows`` (columns ``bucket``, ``score`` and ``outcome``: 1/0, NaN when
    unlabelled): overall and per bucket, estimated beside realised where labels exist.
    A bucket with fewer than ``min_rows`` rows gets no estimate (NaN)."""
    if task not in ("binary", "multiclass"):
        return skipped_estimate(f"a {task}: no class probabilities to estimate from")
    if calibration is None:
        return skipped_estimate(
            "this version has no calibration of its probabilities (trained before it was "
            "saved): retrain it to estimate the live metric"
        )
    names = [metric] if estimable(task, metric) else []
    names += [n for n in (("accuracy", "roc_auc", "f1") if task == "binary" else ("accuracy",))
              if n not in names]  # fmt: skip
    note = calibration.note()
    if metric not in names:
        note += f"; {metric} needs every class probability, so accuracy is estimated instead"
    rows = rows[np.isfinite(rows["score"].to_numpy(dtype=float))]
    if rows.empty:
        return skipped_estimate("no served probabilities in the window")

    def judge(part: pd.DataFrame) -> tuple[dict[str, float], dict[str, float], int]:
        est = estimate_metrics(part["score"].to_numpy(), calibration, names)
        lab = part[part["outcome"].notna()]
        real = realised_metrics(lab["score"].to_numpy(), lab["outcome"].to_numpy(),
                                calibration.kind, names)  # fmt: skip
        return est, real, len(lab)

    est, real, n_lab = judge(rows)
    buckets = []
    for b, part in rows.groupby("bucket", sort=True):
        if len(part) < min_rows:
            nan = {n: float("nan") for n in names}
            lab = int(part["outcome"].notna().sum())
            buckets.append(BucketEstimate(float(b), len(part), nan, lab))
            continue
        e, r, k = judge(part)
        buckets.append(BucketEstimate(float(b), len(part), e, k, r))
    return EstimatedPerformance(
        metrics=names,
        n=len(rows),
        estimated=est,
        training={metric: training} if metric in names else {},
        n_labels=n_lab,
        realised=real,
        buckets=buckets,
        calibration=calibration.model_dump(exclude={"x", "y"})
        | {"calibrated": calibration.calibrated},
        note=note,
    )
