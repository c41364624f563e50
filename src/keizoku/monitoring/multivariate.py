"""Multivariate drift: can a classifier tell the reference rows from the current rows?

A domain classifier is trained to separate a sample of the reference (training) rows,
label 0, from a sample of the current window, label 1. Its out-of-fold ROC AUC is 0.5
when the two are exchangeable and grows with any difference it can use, including a
change in how features move together that leaves every marginal (and so every
per-feature test) unchanged. Drift = AUC ≥ ``auc_threshold`` and AUC significantly
above 0.5 (p < ``alpha``). The AUC is the mean of the folds' held-out AUCs. Each of them
is a Mann-Whitney test whose null holds exactly (the fold's model never saw those rows);
the folds' models share training rows, so their z scores are correlated, and their mean
is tested as one standard normal draw (its variance is at most 1): conservative, where
pooling the out-of-fold scores into one test is not (a flexible model on a small window
then raises false alarms). The features it used are ranked by how much the held-out AUC
falls when each is shuffled.

The classifier is a quadratic discriminant fitted by ridge least squares, in numpy
alone (decision 0010, s10 section): every feature becomes rank scores (numeric, with
a missing indicator) or level indicators (categorical: the most frequent levels,
the rest, missing), and the model sees those columns and their pairwise products. That
is the optimal separator between two Gaussians: a change of mean, of spread or of
correlation, of a category's share or of the missing rate, and a shift of a numeric
feature within one category all move one of its terms. It replaced scikit-learn's
histogram gradient boosting, whose import alone cost more than the 2 s `monitor` has
from the prediction log.

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

from keizoku.monitoring.estimate import weighted_auc

__all__ = ["MultivariateDrift", "domain_classifier", "skipped"]

FOLDS = 3
LEVELS = 8  # categorical levels kept as their own indicator; the rest share one
PRODUCT_COLUMNS = 32  # columns whose pairwise products the model sees (528 products)
BASE_COLUMNS = 256  # a wide table keeps each feature's first 256 // features columns
RIDGE = 1.0  # the ridge penalty per training row, on unit-variance columns
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


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks from 0 (ties share theirs, so row order cannot separate the sides)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts + 1) / 2.0)[inverse.ravel()]


def _numeric_block(values: np.ndarray) -> list[np.ndarray]:
    """Rank scores of the present values (missing at the centre) and a missing flag."""
    present = ~np.isnan(values)
    block = []
    if present.sum() > 1:
        score = np.zeros(len(values))
        score[present] = _ranks(values[present]) / (present.sum() - 1) - 0.5
        block.append(score)
    if not present.all():
        block.append(present.astype(float))
    return block


def _categorical_block(values: pd.Series) -> list[np.ndarray]:
    """Indicators of the most frequent levels, of the other levels, and of missing.

    Levels are the values' text (``astype("string")``), coded once (``pd.factorize``:
    first appearance order, missing -1) and compared as integers: the most frequent
    first, ties in order of appearance, as ``value_counts`` orders them. Comparing the
    text once per level cost 5× more (a 12-level column of 6,000 rows: 1.6 ms → 0.3 ms).
    """
    codes, _ = pd.factorize(values.astype("string"))
    counts = np.bincount(codes[codes >= 0])
    kept = np.argsort(-counts, kind="stable")[:LEVELS]
    block = [(codes == level).astype(float) for level in kept]
    if len(counts) > LEVELS:
        block.append(((codes >= 0) & ~np.isin(codes, kept)).astype(float))
    missing = codes < 0
    if missing.any():
        block.append(missing.astype(float))
    return block


def _design(
    ref: pd.DataFrame, cur: pd.DataFrame, kinds: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """(Base columns over both samples stacked, each column's feature index).

    A table that could give more than ``BASE_COLUMNS`` columns (features × the most one
    feature gives) keeps each feature's first ``BASE_COLUMNS // features`` (at least one):
    its rank score, or its most frequent levels. That bounds the fit's time and memory
    on a wide table (300 features with 12 levels each took 3.7 s and 0.9 GB without it).
    """
    both = pd.concat([ref, cur], ignore_index=True)
    cols: list[np.ndarray] = []
    owner: list[int] = []
    widest = LEVELS + 2  # the most columns one feature gives (levels, the rest, missing)
    limit = widest if len(kinds) * widest <= BASE_COLUMNS else max(1, BASE_COLUMNS // len(kinds))
    for index, (name, kind) in enumerate(kinds.items()):
        if kind == "numeric":
            block = _numeric_block(pd.to_numeric(both[name], errors="coerce").to_numpy(float))
        else:
            block = _categorical_block(both[name])
        block = [c for c in block if c.std() > 0][:limit]  # a constant column tells nothing
        cols += block
        owner += [index] * len(block)
    if not cols:
        return np.zeros((len(both), 0)), np.zeros(0, dtype=int)
    base = np.column_stack(cols)
    return (base - base.mean(axis=0)) / base.std(axis=0), np.array(owner)


def _expand(base: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """The base columns, their squares and the products of pairs from different features."""
    head = base[:, :PRODUCT_COLUMNS]
    i, j = np.triu_indices(head.shape[1])
    pairs = (i == j) | (owner[i] != owner[j])
    products = head[:, i[pairs]] * head[:, j[pairs]]
    products -= products.mean(axis=0)
    return np.hstack([base, products, np.ones((len(base), 1))])


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge least squares on ±1 targets (Fisher's discriminant); the intercept (the last
    column, all ones) is free.

    With fewer training rows than columns (a small window) the same solution comes from
    the rows' system (:func:`_fit_rows`). Otherwise the Gram matrix is summed in float32
    (4× faster than float64 here; the ridge keeps it well conditioned) and solved in float64.
    """
    if len(x) < x.shape[1]:
        return _fit_rows(x, 2.0 * y - 1.0)
    penalty = np.full(x.shape[1], RIDGE * len(x))
    penalty[-1] = 0.0
    single = x.astype(np.float32)
    gram = (single.T @ single).astype(float)
    gram[np.diag_indices_from(gram)] += penalty
    return np.linalg.solve(gram, x.T @ (2.0 * y - 1.0))


def _fit_rows(x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """:func:`_fit` through the n × n system of the rows (the dual form of ridge).

    The free intercept is taken out by centring the other columns and the target; the
    weights are then ``centred.T @ a`` with ``(centred @ centred.T + penalty) a = target``.
    Same solution; for 80 rows and 565 columns, a 80 × 80 solve instead of 565 × 565.
    """
    columns = x[:, :-1]
    means, middle = columns.mean(axis=0), target.mean()
    centred = columns - means
    kernel = centred @ centred.T
    kernel[np.diag_indices_from(kernel)] += RIDGE * len(x)
    weights = centred.T @ np.linalg.solve(kernel, target - middle)
    return np.append(weights, middle - means @ weights)


def _auc_z(auc: float, n0: int, n1: int) -> float:
    """How many standard errors ``auc`` lies above 0.5 (Mann-Whitney U, no drift)."""
    return (auc - 0.5) / math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))


def _folds(y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds: each class shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % FOLDS
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(FOLDS)]


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
    from threadpoolctl import threadpool_limits

    kinds = {k: v for k, v in kinds.items() if k in ref.columns and k in cur.columns}
    n0, n1 = len(ref), len(cur)
    if not kinds:
        return skipped("no feature is present in both the reference sample and the window")
    if min(n0, n1) < 2 * FOLDS * 5:
        return skipped(f"too few rows for the domain classifier ({n0} reference, {n1} current)")
    base, owner = _design(ref[list(kinds)], cur[list(kinds)], kinds)
    y = np.concatenate([np.zeros(n0, dtype=int), np.ones(n1, dtype=int)])
    folds = _folds(y, seed)
    # One thread: on a few thousand rows BLAS's threads cost more than they save, and far
    # more on a busy machine.
    with threadpool_limits(1):
        x = _expand(base, owner)
        weights, aucs, zs = [], [], []
        for train, test in folds:
            weights.append(_fit(x[train], y[train]))
            aucs.append(weighted_auc(x[test] @ weights[-1], y[test].astype(float)))
            zs.append(_auc_z(aucs[-1], int((y[test] == 0).sum()), int(y[test].sum())))
        auc = float(np.mean(aucs))
        p = 0.5 * math.erfc(float(np.mean(zs)) / math.sqrt(2))
        drifted = bool(auc >= auc_threshold and p < alpha)
        names = list(kinds)
        ranked = _importance(weights, folds, base, owner, y, names, seed) if drifted else []
    used = ", ".join(f"{f} ({d:+.3f})" for f, d in ranked[:top])
    big = "≥" if auc >= auc_threshold else "<"
    sig = "<" if p < alpha else "≥"
    reason = f"domain classifier AUC {auc:.3f} {big} {auc_threshold:g}, p={p:.2g} {sig} {alpha:g}"
    if used:
        reason += f"; it tells them apart by {used}"
    return MultivariateDrift(auc, p, auc_threshold, drifted, n0, n1, ranked[:top], reason)


def _importance(
    weights: list[np.ndarray],
    folds: list[tuple[np.ndarray, np.ndarray]],
    base: np.ndarray,
    owner: np.ndarray,
    y: np.ndarray,
    names: list[str],
    seed: int,
) -> list[tuple[str, float]]:
    """Per feature, the mean fall of the held-out AUC when that feature is shuffled.

    A feature none of whose columns is among the first ``PRODUCT_COLUMNS`` changes only
    its own base columns' share of the score: that share is swapped, and the products are
    not expanded again (on a wide table, most features; 300 of them took 1 s otherwise).
    """
    rng = np.random.default_rng(seed)
    drops = np.zeros(len(names))
    in_products = np.isin(np.arange(len(names)), owner[:PRODUCT_COLUMNS])
    for w, (_, test) in zip(weights, folds, strict=True):
        if len(test) > IMPORTANCE_ROWS:  # a stratified subsample: both classes kept
            keep = np.concatenate([rng.permutation(test[y[test] == k])[: IMPORTANCE_ROWS // 2]
                                   for k in (0, 1)])  # fmt: skip
            test = np.sort(keep)
        held, yt = base[test], y[test].astype(float)
        scores = _expand(held, owner) @ w
        score = weighted_auc(scores, yt)
        for j in range(len(names)):
            mine = np.flatnonzero(owner == j)
            if not len(mine):
                continue
            rows = rng.permutation(len(held))
            if in_products[j]:
                shuffled = held.copy()
                shuffled[:, mine] = held[np.ix_(rows, mine)]
                moved = _expand(shuffled, owner) @ w
            else:
                moved = scores + (held[np.ix_(rows, mine)] - held[:, mine]) @ w[mine]
            drops[j] += score - weighted_auc(moved, yt)
    order = np.argsort(-drops)
    floor = 0.1 * drops.max()  # features that matter, not the noise of shuffling the rest
    return [(names[j], float(drops[j] / len(weights))) for j in order if drops[j] > floor > 0]
