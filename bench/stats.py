"""The statistics of the AutoML benchmark, as plain functions (unit-tested in tests/bench/).

- ``per_row_errors``: each test row's contribution to the primary error, so that the error
  of a bootstrap resample can be recomputed cheaply;
- ``paired_bootstrap``: a confidence interval for err(a) - err(b) over the same test rows;
- ``verdict``: better / worse / tie from that interval;
- ``mean_ranks`` and ``normalised_score``: across data sets.

The primary error is 1 - ROC AUC for classification (macro one-vs-rest for multiclass) and
RMSE for regression, as in ``common.primary_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

ErrorFn = Callable[[np.ndarray], float]


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney; ties share their mean rank): scikit-learn's value
    without its per-call input checks, which dominate thousands of bootstrap calls."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_error(y: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> ErrorFn:
    """err(rows) = 1 - ROC AUC on those rows (macro one-vs-rest over the classes present)."""
    y = np.asarray(y).astype(str)
    proba = np.asarray(proba, dtype=float)
    binary = len(classes) == 2

    def err(rows: np.ndarray) -> float:
        yy, pp = y[rows], proba[rows]
        if binary:
            return 1.0 - roc_auc(yy == classes[1], pp[:, 1])
        aucs = [roc_auc(yy == c, pp[:, j]) for j, c in enumerate(classes)]
        present = [a for a in aucs if a == a]
        return 1.0 - float(np.mean(present)) if present else float("nan")

    return err


def rmse_error(y: np.ndarray, pred: np.ndarray) -> ErrorFn:
    """err(rows) = RMSE on those rows."""
    sq = (np.asarray(y, dtype=float) - np.asarray(pred, dtype=float)) ** 2

    def err(rows: np.ndarray) -> float:
        return float(np.sqrt(sq[rows].mean()))

    return err


def paired_bootstrap(
    err_a: ErrorFn,
    err_b: ErrorFn,
    n_rows: int,
    *,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """err_a - err_b on all rows, and its percentile interval over ``n_boot`` resamples of
    the rows (the same resample for both: the pairing). Negative = a has the lower error."""
    rng = np.random.default_rng(seed)
    everything = np.arange(n_rows)
    delta = err_a(everything) - err_b(everything)
    diffs = []
    for _ in range(n_boot):
        rows = rng.integers(0, n_rows, n_rows)
        d = err_a(rows) - err_b(rows)
        if d == d:  # a resample without both classes has no AUC: skip it
            diffs.append(d)
    if not diffs:
        return {"delta": float(delta), "low": float("nan"), "high": float("nan"), "n_boot": 0}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {"delta": float(delta), "low": float(low), "high": float(high), "n_boot": len(diffs)}


def verdict(ci: Mapping[str, float]) -> str:
    """'better' (a's error lower beyond the interval), 'worse', or 'tie'."""
    low, high = ci.get("low", float("nan")), ci.get("high", float("nan"))
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "tie"


def mean_ranks(
    errors: Mapping[str, Mapping[str, float | None]], tools: Sequence[str]
) -> dict[str, float | None]:
    """Mean rank per tool over data sets (1 = lowest error; ties share the mean rank; a tool
    with no error on a data set it was run on ranks last there).

    ``errors``: data set -> tool -> error (None or missing key: failed / not run).
    """
    ranks: dict[str, list[float]] = {t: [] for t in tools}
    for per_tool in errors.values():
        ran = [t for t in tools if t in per_tool]
        scored = {t: float(e) for t, e in per_tool.items() if t in ranks and e is not None}
        for t in ran:
            if t in scored:
                better = sum(1 for u in scored if scored[u] < scored[t])
                ties = sum(1 for u in scored if scored[u] == scored[t]) - 1
                ranks[t].append(1 + better + ties / 2)
            else:
                ranks[t].append(float(len(ran)))
    return {t: (sum(r) / len(r) if r else None) for t, r in ranks.items()}


def normalised_score(err_base: float, err_tool: float) -> float:
    """(err_base - err_tool) / max(err_base, err_tool): in [-1, 1], 0 = the baseline's error."""
    worst = max(err_base, err_tool)
    return (err_base - err_tool) / worst if worst > 0 else 0.0
