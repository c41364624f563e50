"""The conformal rank of the forecast intervals counts the new forecast as one more trajectory
(decision 0017, s7): errors along one forecast move together, so the s6 rank (one more
point) under-covers when a fold's errors share a drift, as a missed trend makes them."""

from __future__ import annotations

import math

import numpy as np

from keizoku.forecast.train import conformal

LEVEL = 0.9


def _drifting(rng: np.random.Generator, folds: int, series: int, horizon: int) -> np.ndarray:
    """Errors[fold, series, step] that accumulate along each forecast (a random walk)."""
    return np.cumsum(rng.normal(0, 1, (folds, series, horizon)), axis=2)


def test_the_rank_adds_a_horizon_of_errors_not_one() -> None:
    rng = np.random.default_rng(1)
    errors = rng.normal(0, 1, (10, 4, 6))  # 240 errors, horizon 6
    scales = np.ones((10, 4))
    sigma, q = conformal(errors, scales, LEVEL)
    _, q_points = conformal(errors, scales, LEVEL, count="points")
    scores = np.sort((np.abs(errors) / sigma).ravel())
    assert q == scores[math.ceil((240 + 6) * LEVEL) - 1]
    assert q_points == scores[math.ceil((240 + 1) * LEVEL) - 1] and q_points < q
    sigma3, few = conformal(errors[:3, :1], scales[:3, :1], LEVEL)  # 18 errors: the largest
    assert few == np.max(np.abs(errors[:3, :1]) / sigma3)


def test_drifting_errors_are_covered_at_the_level_where_the_s6_rank_fell_short() -> None:
    rng = np.random.default_rng(5)
    covered: dict[str, list[float]] = {"trajectories": [], "points": []}
    for _ in range(300):  # three CV folds of one series, then the forecast that follows
        errors = _drifting(rng, 4, 1, 12)
        for count, inside in covered.items():
            sigma, q = conformal(errors[:3], np.ones((3, 1)), LEVEL, count=count)
            inside.append(float(np.mean(np.abs(errors[3]) <= q * sigma)))
    assert np.mean(covered["points"]) < 0.87  # the s6 rank: short of 0.9
    assert 0.88 <= np.mean(covered["trajectories"]) <= 0.95
