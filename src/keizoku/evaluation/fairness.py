"""Per-group metrics and gaps for the columns marked ``sensitive`` in the schema.

Sensitive columns are not features: the model never sees them, but they are kept
with the data so the model can be checked for unequal treatment. For each one,
fairlearn's ``MetricFrame`` gives per-group metrics and the gaps between groups:

- binary: count, selection rate, true/false positive rate, error rate; gaps are the
  demographic parity difference (selection rates) and the equalized odds difference
  (the larger of the TPR and FPR differences); a row is "selected" when the positive
  class has probability ≥ 0.5;
- multiclass: count and error rate; the gap is the error rate difference;
- regression: count, mean absolute error and mean prediction; the gap is the MAE difference.

Above ``MAX_ROWS`` rows a seeded random sample of that size is measured (``n`` says how
many rows were used, ``total_rows`` how many there were). Thresholds come from the
spec's ``fairness:`` section (:class:`FairnessSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.sections import Section, validate_section

__all__ = ["FairnessSpec", "fairness_report", "parse_fairness", "GAP_NAMES"]

MAX_GROUPS = 20
MAX_ROWS = 10_000
NUMERIC_BINS = 4
GAP_NAMES = (
    "demographic_parity_difference",
    "equalized_odds_difference",
    "error_rate_difference",
    "mae_difference",
)


class HasFairness(Protocol):
    """Anything with a ``fairness`` section (the project spec): evaluation never imports it."""

    @property
    def fairness(self) -> Any: ...


class FairnessSpec(Section):
    """The spec's ``fairness:`` section: the largest gap allowed for promotion (None: no limit).

    Example::

        fairness:
          max_demographic_parity_difference: 0.1
          max_equalized_odds_difference: 0.1
    """

    max_demographic_parity_difference: float | None = None
    max_equalized_odds_difference: float | None = None
    max_error_rate_difference: float | None = None
    max_mae_difference: float | None = None

    def limits(self) -> dict[str, float]:
        """gap name → largest allowed value, for the limits that are set."""
        out = {}
        for gap in GAP_NAMES:
            value = getattr(self, f"max_{gap}")
            if value is not None:
                out[gap] = float(value)
        return out


def parse_fairness(section: FairnessSpec | Mapping[str, Any] | None) -> FairnessSpec:
    """The typed ``fairness:`` section (validated when given as a mapping)."""
    return validate_section(FairnessSpec, section, "fairness")


def _groups(series: pd.Series, kind: str) -> pd.Series:
    # here, not at the top: FairnessSpec is read with every keizoku.yaml (no scikit-learn)
    from keizoku.evaluation.metrics import quantile_segments

    if kind == "numeric" and pd.to_numeric(series, errors="coerce").nunique() > MAX_GROUPS:
        values = pd.to_numeric(series, errors="coerce")
        return quantile_segments(values, NUMERIC_BINS)
    return series.astype(object).where(series.notna(), "missing").astype(str)


def _error_rate(y_true: Any, y_pred: Any) -> float:
    return float(np.mean(np.asarray(y_true) != np.asarray(y_pred)))


def _mae(y_true: Any, y_pred: Any) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def _mean_pred(y_true: Any, y_pred: Any) -> float:
    return float(np.mean(np.asarray(y_pred, float)))


def _metric_fns(task: str) -> dict[str, Any]:
    from fairlearn.metrics import count, false_positive_rate, selection_rate, true_positive_rate

    if task == "binary":
        return {
            "count": count,
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "error_rate": _error_rate,
        }
    if task == "multiclass":
        return {"count": count, "error_rate": _error_rate}
    return {"count": count, "mae": _mae, "mean_prediction": _mean_pred}


def _clean(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _one_column(
    task: str, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series
) -> dict[str, Any]:
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(
        metrics=_metric_fns(task), y_true=y_true, y_pred=y_pred, sensitive_features=groups
    )
    table = frame.by_group
    per_group = [
        {"group": str(g), **{k: _clean(v) for k, v in row.items()}} for g, row in table.iterrows()
    ]
    diff = frame.difference(method="between_groups")
    gaps: dict[str, float | None] = {}
    if task == "binary":
        gaps["demographic_parity_difference"] = _clean(diff["selection_rate"])
        tpr, fpr = diff["true_positive_rate"], diff["false_positive_rate"]
        gaps["equalized_odds_difference"] = _clean(np.nanmax([tpr, fpr]))
        gaps["error_rate_difference"] = _clean(diff["error_rate"])
    elif task == "multiclass":
        gaps["error_rate_difference"] = _clean(diff["error_rate"])
    else:
        gaps["mae_difference"] = _clean(diff["mae"])
    return {"groups": per_group, "gaps": gaps}


def fairness_report(
    task: str,
    y: np.ndarray,
    pred: np.ndarray,
    frame: pd.DataFrame,
    schema: Schema,
    source: str,
) -> dict[str, Any]:
    """Per-group metrics and gaps for every sensitive column present in ``frame``."""
    columns: dict[str, Any] = {}
    total = len(y)
    frame = frame.reset_index(drop=True)
    if len(y) > MAX_ROWS:  # MetricFrame costs ~25 µs per row and metric: use a seeded sample
        keep = np.sort(np.random.default_rng(0).choice(len(y), MAX_ROWS, replace=False))
        frame, y, pred = frame.iloc[keep].reset_index(drop=True), y[keep], pred[keep]
    if task == "binary":
        y_true, y_pred = (y == 1).astype(int), (pred[:, 1] >= 0.5).astype(int)
    elif task == "multiclass":
        y_true, y_pred = y, pred.argmax(axis=1)
    else:
        y_true, y_pred = y, pred
    for col in schema.sensitive:
        if col.name not in frame:
            continue
        groups = _groups(frame[col.name], col.kind)
        columns[col.name] = _one_column(task, y_true, y_pred, groups)
    missing = [c.name for c in schema.sensitive if c.name not in frame]
    return {
        "source": source,
        "task": task,
        "n": int(len(y)),
        "total_rows": int(total),
        "selection_rule": "P(positive) >= 0.5" if task == "binary" else None,
        "columns": columns,
        "missing_columns": missing,
    }
