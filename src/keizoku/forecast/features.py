"""Features of a series for a global gradient-boosted model, strictly without look-ahead.

Row ``t`` (the value to predict is ``y[t]``) sees ``y[:t]`` only: the last value
``y[t-1]`` is the base, lags ``y[t-k]`` and rolling means over ``y[t-w:t]`` are given
relative to it, divided by the series' scale (its mean absolute step), so series of
different levels and trends share one model. Calendar fields and exogenous values are
those of period ``t``, which are known in advance. The target is ``(y[t] - y[t-1]) / scale``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["calendar", "lag_block", "lags_for", "scale_of"]


def lags_for(season: int, history: int, week: int | None = None) -> tuple[list[int], list[int]]:
    """(lags, rolling windows) for a seasonal period and the shortest history; ``week``: a
    second, longer season (168 for hourly data) whose lag is added when the history allows."""
    lags = set(range(2, min(max(season, 3), 13) + 1)) | {season, 2 * season}
    lags |= {week} if week else set()
    cap = max(history // 2, 2)
    windows = sorted({w for w in (3, season) if 2 <= w <= cap})
    return sorted(k for k in lags if 2 <= k <= cap), windows


def scale_of(y: np.ndarray) -> float:
    """The mean absolute one-step change of ``y`` (1.0 when there is none)."""
    steps = np.abs(np.diff(y[np.isfinite(y)]))
    value = float(steps.mean()) if len(steps) else 0.0
    return value if value > 1e-12 else 1.0


def lag_block(y: np.ndarray, lags: list[int], windows: list[int], scale: float) -> np.ndarray:
    """(n, len(lags) + len(windows)) features of each position of ``y``; NaN where unknown."""
    s = pd.Series(y, dtype=float)
    base = s.shift(1)
    cols = [(s.shift(k) - base) / scale for k in lags]
    cols += [(base.rolling(w).mean() - base) / scale for w in windows]
    if not cols:
        return np.zeros((len(y), 0))
    return np.column_stack([c.to_numpy() for c in cols])


def calendar(index: pd.DatetimeIndex) -> np.ndarray:
    """Month, day of week, day of month and hour of each timestamp."""
    return np.column_stack([index.month, index.day_of_week, index.day, index.hour]).astype(float)
