"""A cheap learning curve, computed once at training time.

The chosen model's heaviest member (its family and parameters) is refitted on 20, 40,
60, 80 and 100 % of a fixed 80 % split and scored on the other 20 %, with the
project's metric. Training rows are capped at ``MAX_ROWS``, a boosted member's trees at
``LC_MAX_TREES`` (rounds × trees per round, whether or not its parameters name a round
count: a bag's members carry none, and their family's default is 2,000), and the whole
curve at ``budget_s`` seconds. The first point is always fitted; a later point is started
only when the time of the points so far, scaled to its rows, says it ends within the
budget. Points left out make the curve say so (``complete: false``). A flat curve means
more data of the same kind will not help much.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from keizoku.features.encoder import TabularEncoder
from keizoku.training.cv import thread_limit, with_threads
from keizoku.training.model import KeizokuModel, raw_predict

__all__ = ["learning_curve", "FRACTIONS"]

FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
MAX_ROWS = 4000


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cut = int(0.8 * n)
    return order[: min(cut, MAX_ROWS)], order[cut:]


def _expand(pred: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """Probabilities over all ``k`` classes when a subsample lacked some of them."""
    if pred.ndim == 1 or pred.shape[1] == k:
        return pred
    full = np.zeros((len(pred), k))
    full[:, seen] = pred
    return full


def _score(metric: Any, y: np.ndarray, pred: np.ndarray) -> float | None:
    try:
        value = float(metric(y, pred))
    except ValueError:  # e.g. AUC on a validation part with one class
        return None
    return value if np.isfinite(value) else None


LC_MAX_TREES = 600  # trees per fit: rounds x trees per round (one per class for most)
LC_MIN_ROUNDS = 20
LC_SCORE_ROWS = 1000  # rows scored per point (train and validation)
# Boosted families: their round count is ``n_estimators`` in keizoku's parameters, and
# whether a multiclass round grows one tree per class.
ROUNDS_PARAM = {
    "lightgbm": True,
    "xgboost": True,
    "hist_gradient_boosting": True,
    "catboost": False,  # one multi-output tree per round
}


def rounds_cap(family: str, n_classes: int) -> int | None:
    """Most rounds a learning-curve fit of ``family`` may boost (None: not a boosted family)."""
    if family not in ROUNDS_PARAM:
        return None
    per_round = n_classes if ROUNDS_PARAM[family] and n_classes > 2 else 1
    return max(LC_MIN_ROUNDS, LC_MAX_TREES // per_round)


def _capped(params: dict[str, Any], family: str, n_classes: int) -> dict[str, Any]:
    cap = rounds_cap(family, n_classes)
    if cap is None:
        return dict(params)
    rounds = int(params.get("n_estimators", cap))
    return {**params, "n_estimators": min(rounds, cap)}


def learning_curve(
    model: KeizokuModel,
    frame: pd.DataFrame,
    y: np.ndarray,
    metric: Any,
    budget_s: float = 4.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Train size → (train score, validation score) for the heaviest member's configuration."""
    from keizoku.training.zoo import FAMILIES

    member = max(model.members, key=lambda m: m.weight)
    family = FAMILIES[member.family]
    train_idx, valid_idx = _split(len(frame), seed)
    k = len(model.classes or []) if model.task != "regression" else 0
    points: list[dict[str, Any]] = []
    params = _capped(member.params, member.family, k)
    start, per_row = time.monotonic(), 0.0
    for fraction in FRACTIONS:
        rows = train_idx[: max(int(fraction * len(train_idx)), 10)]
        elapsed = time.monotonic() - start
        if points and elapsed + per_row * len(rows) > budget_s:
            break  # this point would end past the budget
        if k and len(np.unique(y[rows])) < k:
            continue  # some learners (XGBoost) refuse a subsample that lacks a class
        part = frame.iloc[rows]
        enc = TabularEncoder(member.encoder.columns, mode=member.encoder.mode).fit(part)
        began = time.monotonic()
        est = family.make(model.task, params, seed, enc)
        with_threads(est, len(rows))
        X = enc.transform(part)
        with warnings.catch_warnings(), thread_limit(len(rows)):  # as the search's folds
            warnings.simplefilter("ignore")
            est.fit(X, y[rows])
        seen = np.unique(y[rows])
        scores = []
        valid = valid_idx[:LC_SCORE_ROWS]
        # the training rows scored are the first of ``part``: their encoding is X's first rows
        for idx, Xs in (
            (rows[:LC_SCORE_ROWS], X[:LC_SCORE_ROWS]),
            (valid, enc.transform(frame.iloc[valid])),
        ):
            pred = raw_predict(est, Xs, model.task)
            scores.append(_score(metric, y[idx], _expand(pred, seen, k) if k else pred))
        per_row = max(per_row, (time.monotonic() - began) / len(rows))
        points.append(
            {"fraction": fraction, "rows": int(len(rows)), "train": scores[0], "valid": scores[1]}
        )
    return {
        "family": member.family,
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "validation_rows": int(min(len(valid_idx), LC_SCORE_ROWS)),
        "points": points,
        "complete": len(points) == len(FRACTIONS),
        "seconds": round(time.monotonic() - start, 3),
    }
