"""The forecasters on the leaderboard: seasonal naive, ETS (statsmodels), LightGBM with lags.

Each is fitted on a list of series and forecasts the next ``horizon`` periods of one
series from its history (``Series``), with that series' future exogenous values.
ETS is a local model: it chooses its form per series by AIC (error additive; trend none,
additive or damped; season none, additive or multiplicative where the series is positive)
and is refitted on the history it forecasts from. LightGBM is one global model over all
series, forecasting recursively (each step's prediction becomes the next step's lag).
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np
import pandas as pd

from keizoku.forecast.features import calendar, lag_block, lags_for, scale_of
from keizoku.forecast.series import Series, week_length

__all__ = ["ETS", "Forecaster", "LightGBMLags", "SeasonalNaive", "make"]


class Forecaster(Protocol):
    name: str

    def fit(self, series: list[Series], season: int, freq: str) -> None: ...
    def forecast(self, s: Series, horizon: int, future_exog: np.ndarray) -> np.ndarray: ...


class SeasonalNaive:
    """The value one season earlier (the last value when the history is shorter)."""

    name = "seasonal_naive"

    def __init__(self) -> None:
        self.season = 1

    def fit(self, series: list[Series], season: int, freq: str) -> None:
        self.season = season

    def forecast(self, s: Series, horizon: int, future_exog: np.ndarray) -> np.ndarray:
        m = self.season if len(s.y) >= self.season else 1
        last = s.y[-m:]
        return np.asarray(np.resize(last, horizon), dtype=float)


ETS_SEASONS, ETS_MIN_HISTORY = 20, 200
ETS_FORMS: tuple[tuple[str | None, bool, str | None], ...] = (
    (None, False, None), ("add", False, None), ("add", True, None),
    (None, False, "add"), ("add", True, "add"), (None, False, "mul"), ("add", True, "mul"),
)  # fmt: skip


class ETS:
    """statsmodels' exponential smoothing, its form chosen per series by AIC."""

    name = "ets"

    def __init__(self) -> None:
        self.season = 1
        self.forms: dict[tuple[Any, ...], tuple[str | None, bool, str | None]] = {}
        self._fitted: dict[tuple[Any, ...], tuple[int, float, Any]] = {}

    def fit(self, series: list[Series], season: int, freq: str) -> None:
        self.season = season
        self._fitted = {}
        for s in series:
            form, fitted = self._select(s.y)
            self.forms[s.key] = form
            self._fitted[s.key] = (len(s.y), float(s.y[-1]), fitted)  # reused for this history

    def __getstate__(self) -> dict[str, Any]:  # the registered file keeps forms, not fits
        return {**self.__dict__, "_fitted": {}}

    def _fit(self, y: np.ndarray, form: tuple[str | None, bool, str | None]) -> Any:
        """Fitted on the recent past only: at most 20 seasons (at least 200 periods), so a
        long hourly history costs what a few weeks do (the smoothing forgets the rest)."""
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        trend, damped, seasonal = form
        recent = y[-max(ETS_SEASONS * self.season, ETS_MIN_HISTORY) :]
        model = ExponentialSmoothing(
            recent, trend=trend, damped_trend=damped, seasonal=seasonal,
            seasonal_periods=self.season if seasonal else None, initialization_method="estimated",
        )  # fmt: skip
        return model.fit(use_brute=False)

    def _forms(self, y: np.ndarray) -> list[tuple[str | None, bool, str | None]]:
        seasonal_ok = self.season > 1 and len(y) >= 2 * self.season + 2
        positive = bool(np.all(y > 0))
        return [
            f for f in ETS_FORMS
            if (f[2] is None or seasonal_ok) and (f[2] != "mul" or positive)
        ]  # fmt: skip

    def _select(self, y: np.ndarray) -> tuple[tuple[str | None, bool, str | None], Any]:
        best: tuple[float, Any, Any] = (np.inf, ETS_FORMS[0], None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for form in self._forms(y):
                try:
                    fitted = self._fit(y, form)
                except (ValueError, np.linalg.LinAlgError):
                    continue
                aic = float(fitted.aic)
                if np.isfinite(aic) and aic < best[0]:
                    best = (aic, form, fitted)
            if best[2] is None:
                best = (0.0, ETS_FORMS[0], self._fit(y, ETS_FORMS[0]))
        return best[1], best[2]

    def forecast(self, s: Series, horizon: int, future_exog: np.ndarray) -> np.ndarray:
        form = self.forms.get(s.key)
        cached = self._fitted.get(s.key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cached is not None and cached[:2] == (len(s.y), float(s.y[-1])):
                fitted = cached[2]
            elif form is not None and form in self._forms(s.y):
                fitted = self._fit(s.y, form)
            else:
                fitted = self._select(s.y)[1]
            out = np.asarray(fitted.forecast(horizon), dtype=float)
        return np.where(np.isfinite(out), out, s.y[-1])


class LightGBMLags:
    """One LightGBM model over all series: lags, rolling means, calendar, exogenous values."""

    name = "lightgbm"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.lags: list[int] = []
        self.windows: list[int] = []
        self.codes: dict[tuple[Any, ...], int] = {}
        self.model: Any = None
        self.freq = "D"

    def _rows(self, s: Series, y: np.ndarray, index: pd.DatetimeIndex, exog: np.ndarray) -> Any:
        scale = scale_of(s.y)
        code = np.full((len(y), 1), self.codes.get(s.key, -1), dtype=float)
        parts = [lag_block(y, self.lags, self.windows, scale), calendar(index), exog, code]
        return np.column_stack(parts), scale

    def fit(self, series: list[Series], season: int, freq: str) -> None:
        import lightgbm as lgb

        self.freq = freq
        shortest = min(len(s) for s in series)
        self.lags, self.windows = lags_for(season, shortest, week_length(freq))
        self.codes = {s.key: i for i, s in enumerate(series)}
        xs, ts = [], []
        for s in series:
            x, scale = self._rows(s, s.y, s.index, s.exog)
            target = np.diff(s.y, prepend=np.nan) / scale
            keep = np.isfinite(target)
            xs.append(x[keep])
            ts.append(target[keep])
        x_all, t_all = np.vstack(xs), np.concatenate(ts)
        self.model = lgb.LGBMRegressor(
            n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=5,
            subsample=0.9, subsample_freq=1, colsample_bytree=0.9, random_state=self.seed,
            n_jobs=1, verbose=-1,
        )  # fmt: skip
        self.model.fit(x_all, t_all)

    def forecast(self, s: Series, horizon: int, future_exog: np.ndarray) -> np.ndarray:
        need = max([*self.lags, *self.windows, 1]) + 1
        y = list(s.y[-need:])
        index = pd.date_range(s.index[-1], periods=horizon + 1, freq=self.freq)[1:]
        scale = scale_of(s.y)
        code = float(self.codes.get(s.key, -1))
        out = []
        for j in range(horizon):
            arr = np.asarray([*y, np.nan])
            lagged = lag_block(arr, self.lags, self.windows, scale)[-1:]
            row = np.column_stack(
                [lagged, calendar(index[j : j + 1]), future_exog[j : j + 1], [[code]]]
            )
            step = float(self.model.predict(row)[0])
            value = y[-1] + step * scale
            out.append(value)
            y = [*y[1:], value]
        return np.asarray(out, dtype=float)


def make(name: str, seed: int = 0) -> Forecaster:
    if name == "seasonal_naive":
        return SeasonalNaive()
    if name == "ets":
        return ETS()
    return LightGBMLags(seed)
