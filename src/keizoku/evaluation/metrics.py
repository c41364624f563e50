"""Evaluation data of one set of predictions: metrics, curves, tables, worst slices.

Everything here is plain JSON (lists of floats, dicts), computed from the true
labels ``y`` (class indices, or values for regression) and the predictions ``pred``
(probabilities ``n×k`` for classifiers, values for regression). The same function
serves the out-of-fold predictions saved at training and a fresh ``--data`` file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from keizoku.data.schema import Schema
from keizoku.training.metrics import evaluate_all

__all__ = [
    "evaluate_predictions",
    "row_errors",
    "worst_slices",
    "quantile_segments",
    "MAX_CURVE_POINTS",
]

MAX_CURVE_POINTS = 200
MAX_RESIDUAL_POINTS = 1000
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
QUANTILE_BINS = 5
MAX_LEVELS = 20
MAX_SLICES = 15
MAX_SLICE_ROWS = 50_000


def _thin(*arrays: np.ndarray, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """Keep at most ``limit`` evenly spaced points (first and last kept) of aligned arrays."""
    n = len(arrays[0])
    if not n:
        return [[] for _ in arrays]
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))
    return [[round(float(a[i]), 6) for i in idx] for a in arrays]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _classification(y: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    labels = [str(c) for c in classes]
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    out: dict[str, Any] = {
        "confusion": {
            "labels": labels,
            "matrix": skm.confusion_matrix(y, pred, labels=range(k)).tolist(),
        }
    }
    # binary: the positive class (index 1) only; multiclass: one-vs-rest per class
    targets = [1] if k == 2 else list(range(k))
    roc, pr, cal = {}, {}, {}
    for j in targets:
        hit = (y == j).astype(int)
        if hit.min() == hit.max():
            continue  # a class absent (or alone) in y has no curve
        fpr, tpr, _ = skm.roc_curve(hit, proba[:, j])
        precision, recall, _ = skm.precision_recall_curve(hit, proba[:, j])
        fpr_t, tpr_t = _thin(fpr, tpr)
        rec_t, prec_t = _thin(recall[::-1], precision[::-1])
        roc[labels[j]] = {"fpr": fpr_t, "tpr": tpr_t, "auc": float(skm.auc(fpr, tpr))}
        pr[labels[j]] = {
            "recall": rec_t,
            "precision": prec_t,
            "average_precision": float(skm.average_precision_score(hit, proba[:, j])),
            "base_rate": float(hit.mean()),
        }
        frac, mean_pred = calibration_curve(hit, proba[:, j], n_bins=10, strategy="quantile")
        cal[labels[j]] = {
            "mean_predicted": [round(float(v), 6) for v in mean_pred],
            "fraction_positive": [round(float(v), 6) for v in frac],
        }
    out.update({"roc": roc, "pr": pr, "calibration": cal})
    if k == 2:
        out["positive_class"] = labels[1]
        out["thresholds"] = _threshold_table(y, proba[:, 1])
    return out


def _threshold_table(y: np.ndarray, p1: np.ndarray) -> list[dict[str, float]]:
    rows = []
    positives = max(int((y == 1).sum()), 1)
    negatives = max(int((y == 0).sum()), 1)
    for t in THRESHOLDS:
        chosen = p1 >= t
        tp = int((chosen & (y == 1)).sum())
        fp = int((chosen & (y == 0)).sum())
        precision = tp / chosen.sum() if chosen.sum() else float("nan")
        recall = tp / positives
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        rows.append(
            {
                "threshold": t,
                "selection_rate": float(chosen.mean()),
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1) if f1 == f1 else float("nan"),
                "false_positive_rate": fp / negatives,
                "accuracy": float(((p1 >= t).astype(int) == y).mean()),
            }
        )
    return rows


def _regression(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    resid = y - pred
    rng = np.random.default_rng(0)
    idx = np.arange(len(y))
    if len(idx) > MAX_RESIDUAL_POINTS:
        idx = np.sort(rng.choice(idx, MAX_RESIDUAL_POINTS, replace=False))
    return {
        "residuals": {
            "predicted": [round(float(v), 6) for v in pred[idx]],
            "actual": [round(float(v), 6) for v in y[idx]],
            "residual": [round(float(v), 6) for v in resid[idx]],
        },
        "residual_summary": {
            "mean": float(resid.mean()),
            "std": float(resid.std()),
            "p05": float(np.quantile(resid, 0.05)),
            "p95": float(np.quantile(resid, 0.95)),
        },
    }


def row_errors(task: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row error: 0/1 misclassification for classifiers, absolute error for regression."""
    if task == "regression":
        return np.asarray(np.abs(y - pred), dtype=float)
    return np.asarray(pred.argmax(axis=1) != y, dtype=float)


def quantile_segments(values: pd.Series, bins: int) -> pd.Series:
    """Row → "low – high" label of its quantile bin ("missing" for NaN)."""
    cut = pd.qcut(values, bins, duplicates="drop")
    names = [f"{iv.left:.4g} – {iv.right:.4g}" for iv in cut.cat.categories] + ["missing"]
    codes = cut.cat.codes.to_numpy()  # -1 (missing) picks the last name
    return pd.Series(np.asarray(names, dtype=object)[codes], index=values.index)


def _segments(series: pd.Series, kind: str) -> pd.Series:
    """Row → segment label: the level (categorical) or the quantile bin (numeric)."""
    if kind == "numeric":
        values = pd.to_numeric(series, errors="coerce")
        if values.nunique() <= QUANTILE_BINS:
            return values.map(lambda v: "missing" if pd.isna(v) else f"{v:g}")
        return quantile_segments(values, QUANTILE_BINS)
    text = series.astype(object).where(series.notna(), "missing").astype(str)
    top = text.value_counts().index[:MAX_LEVELS]
    return text.where(text.isin(top), "other")


def worst_slices(
    frame: pd.DataFrame,
    schema: Schema,
    errors: np.ndarray,
    task: str,
    min_support: int | None = None,
) -> dict[str, Any]:
    """The segments (per categorical level / numeric quantile bin) with the highest error."""
    if len(frame) > MAX_SLICE_ROWS:  # a seeded sample keeps this step within a second
        keep = np.sort(np.random.default_rng(0).choice(len(frame), MAX_SLICE_ROWS, replace=False))
        frame, errors = frame.iloc[keep], errors[keep]
    n = len(frame)
    support = min_support if min_support is not None else max(10, int(0.02 * n))
    rows: list[dict[str, Any]] = []
    for col in schema.features + schema.sensitive:
        if col.kind not in ("numeric", "categorical", "boolean") or col.name not in frame:
            continue
        seg = _segments(frame[col.name].reset_index(drop=True), col.kind)
        stats = pd.Series(errors).groupby(seg.to_numpy(), observed=True)  # levels in order
        counts, means = stats.count(), stats.mean()
        for level, count, err in zip(
            counts.index.tolist(), counts.tolist(), means.tolist(), strict=True
        ):
            if count >= support:
                rows.append(
                    {
                        "feature": col.name,
                        "segment": str(level),
                        "count": int(count),
                        "error": float(err),
                    }
                )
    rows.sort(key=lambda r: (-float(r["error"]), -int(r["count"])))
    return {
        "error_name": "mean absolute error" if task == "regression" else "error rate",
        "overall_error": float(errors.mean()) if n else float("nan"),
        "min_support": support,
        "rows": n,
        "slices": rows[:MAX_SLICES],
    }


def evaluate_predictions(
    task: str,
    y: np.ndarray,
    pred: np.ndarray,
    classes: list[Any] | None,
    frame: pd.DataFrame,
    schema: Schema,
    source: str,
) -> dict[str, Any]:
    """Metrics, curves and worst slices of ``pred`` against ``y``, as JSON-ready data."""
    metrics = {k: _finite(v) for k, v in evaluate_all(task, y, pred).items()}  # type: ignore[arg-type]
    out: dict[str, Any] = {"source": source, "task": task, "n": int(len(y)), "metrics": metrics}
    if task == "regression":
        out.update(_regression(y, pred))
    else:
        out["classes"] = [str(c) for c in classes or range(pred.shape[1])]
        out.update(_classification(y, pred, out["classes"]))
    out["slices"] = worst_slices(frame, schema, row_errors(task, y, pred), task)
    return out
