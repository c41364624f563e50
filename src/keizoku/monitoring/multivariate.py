"""Multivariate drift: can a classifier tell the reference rows from the current rows?

A domain classifier (scikit-learn's histogram gradient boosting) is trained to
separate a sample of the reference (training) rows, label 0, from a sample of the
current window, label 1. Its out-of-fold ROC AUC is 0.5 when the two are
exchangeable and grows with any difference it can use, including a change in how
features move together that leaves every marginal (and so every per-feature test)
unchanged. Drift = AUC ≥ ``auc_threshold`` and AUC significantly above 0.5
(Mann-Whitney normal approximation, p < ``alpha``). The features it used are
ranked by how much the held-out AUC falls when each is shuffled.

The reference sample is the bounded row sample (``reference_sample.parquet``,
≤ ``SAMPLE_ROWS`` rows) saved with the version at training; versions trained before
it existed are skipped with a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MultivariateDrift", "domain_classifier", "skipped"]

FOLDS = 3
# The classifier's settings. 30 rounds at rate 0.2 found the correlation shifts that 60 at
# 0.15 found (3/12 at r = 0.3, 12/12 at r = 0.4, 0/12 false alarms, 5,000 rows a side) in
# 40 % of the time; early stopping was cheaper still but missed every r = 0.3 shift.
MODEL_PARAMS: dict[str, Any] = {
    "max_iter": 30, "max_leaf_nodes": 15, "learning_rate": 0.2, "early_stopping": False,
}  # fmt: skip
IMPORTANCE_ROWS = 1000  # held-out rows per fold that the shuffles are scored on


@dataclass
class MultivariateDrift:
    """The domain classifier's verdict and the numbers behind it."""

    auc: float
    p_value: float
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    top_features: list[tuple[str, float]] = field(default_factory=list)
    reason: str = ""
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def skipped(why: str) -> MultivariateDrift:
    """A check that did not run, and why."""
    nan = float("nan")
    return MultivariateDrift(nan, nan, nan, False, 0, 0, reason=why, skipped=why)


def _encode(ref: pd.DataFrame, cur: pd.DataFrame, kinds: dict[str, str]) -> tuple[Any, Any]:
    """(X as float matrix, mask of categorical columns) over both samples, stacked."""
    both = pd.concat([ref, cur], ignore_index=True)
    cols, cat = [], []
    for name, kind in kinds.items():
        if kind == "numeric":
            cols.append(pd.to_numeric(both[name], errors="coerce").to_numpy(dtype=float))
            cat.append(False)
        else:
            codes = pd.Categorical(both[name].astype("string")).codes.astype(float)
            codes[codes < 0] = np.nan
            levels = np.nanmax(codes) + 1 if np.isfinite(codes).any() else 0
            cols.append(codes)
            cat.append(bool(levels <= 250))  # higher cardinality: codes as numbers
    return np.column_stack(cols), np.array(cat)


def _auc_p(auc: float, n0: int, n1: int) -> float:
    """One-sided p-value of AUC > 0.5 (Mann-Whitney U, normal approximation)."""
    from scipy import stats

    se = math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    return float(stats.norm.sf((auc - 0.5) / se))


def domain_classifier(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    kinds: dict[str, str],
    *,
    auc_threshold: float = 0.55,
    alpha: float = 0.01,
    seed: int = 0,
    top: int = 5,
) -> MultivariateDrift:
    """Out-of-fold AUC of reference (0) vs current (1) rows over the ``kinds`` features."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    kinds = {k: v for k, v in kinds.items() if k in ref.columns and k in cur.columns}
    n0, n1 = len(ref), len(cur)
    if not kinds:
        return skipped("no feature is present in both the reference sample and the window")
    if min(n0, n1) < 2 * FOLDS * 5:
        return skipped(f"too few rows for the domain classifier ({n0} reference, {n1} current)")
    x, cat = _encode(ref[list(kinds)], cur[list(kinds)], kinds)
    y = np.concatenate([np.zeros(n0, dtype=int), np.ones(n1, dtype=int)])
    oof = np.zeros(len(y))
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y))
    models = []
    # One thread: on a few thousand rows OpenMP's threads cost more than they save, and far
    # more on a busy machine (measured 16 s with them, 2 s without, on 2 loaded cores).
    with threadpool_limits(1):
        for train, test in folds:
            model = HistGradientBoostingClassifier(
                **MODEL_PARAMS, categorical_features=cat if cat.any() else None,
                random_state=seed,
            )  # fmt: skip
            model.fit(x[train], y[train])
            oof[test] = model.predict_proba(x[test])[:, 1]
            models.append(model)
        auc = float(roc_auc_score(y, oof))
        p = _auc_p(auc, n0, n1)
        drifted = bool(auc >= auc_threshold and p < alpha)
        ranked = _importance(models, folds, x, y, list(kinds), seed) if drifted else []
    used = ", ".join(f"{f} ({d:+.3f})" for f, d in ranked[:top])
    big = "≥" if auc >= auc_threshold else "<"
    sig = "<" if p < alpha else "≥"
    reason = f"domain classifier AUC {auc:.3f} {big} {auc_threshold:g}, p={p:.2g} {sig} {alpha:g}"
    if used:
        reason += f"; it tells them apart by {used}"
    return MultivariateDrift(auc, p, auc_threshold, drifted, n0, n1, ranked[:top], reason)


def _importance(
    models: list[Any], folds: list[Any], x: np.ndarray, y: np.ndarray, names: list[str], seed: int
) -> list[tuple[str, float]]:
    """Per feature, the mean fall of the held-out AUC when that column is shuffled."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    drops = np.zeros(len(names))
    for model, (_, test) in zip(models, folds, strict=True):
        if len(test) > IMPORTANCE_ROWS:  # a stratified subsample: both classes kept
            keep = np.concatenate([rng.permutation(test[y[test] == k])[: IMPORTANCE_ROWS // 2]
                                   for k in (0, 1)])  # fmt: skip
            test = np.sort(keep)
        xt, yt = x[test], y[test]
        base = roc_auc_score(yt, model.predict_proba(xt)[:, 1])
        for j in range(len(names)):
            shuffled = xt.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops[j] += base - roc_auc_score(yt, model.predict_proba(shuffled)[:, 1])
    order = np.argsort(-drops)
    floor = 0.1 * drops.max()  # features that matter, not the noise of shuffling the rest
    return [(names[j], float(drops[j] / len(models))) for j in order if drops[j] > floor > 0]
