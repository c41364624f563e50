"""Forecasting on the workplace's shared series (skipped where they are absent)."""

from __future__ import annotations

import pandas as pd
import pytest

from keizoku.errors import DataError
from keizoku.forecast.series import split_series
from keizoku.forecast.spec import ForecastCV, ForecastSpec
from keizoku.forecast.train import fit_forecast
from kzsupport import need_shared


def test_air_passengers_beats_seasonal_naive_with_calibrated_intervals() -> None:
    frame = pd.read_csv(need_shared("timeseries/AirPassengers.csv")).drop(columns="rownames")
    spec = ForecastSpec(frequency="MS", start="1949-01-01", horizon=12,
                        models=["seasonal_naive", "lightgbm"])  # fmt: skip
    result = fit_forecast(frame.drop(columns="time"), "value", spec)
    board = result.leaderboard.set_index("model")
    assert board.loc["lightgbm", "mase"] < board.loc["seasonal_naive", "mase"]
    assert 0.7 <= result.coverage <= 1.0  # nominal 0.9, 36 CV errors


def test_garch_business_days_refuse_holidays_unless_filled() -> None:
    frame = pd.read_csv(need_shared("timeseries/Garch.csv")).drop(columns=["rownames", "ddm"])
    spec = ForecastSpec(time="date", time_format="%y%m%d", frequency="B", horizon=5,
                        window=300, cv=ForecastCV(folds=2))  # fmt: skip
    with pytest.raises(DataError, match=r"misses \d+ period\(s\) of 'B', the first 1980-"):
        split_series(frame, spec, "dm")
    filled = spec.model_copy(update={"gaps": "fill", "models": ["seasonal_naive", "lightgbm"]})
    result = fit_forecast(frame, "dm", filled)
    assert result.model.info["frequency"] == "B" and result.model.info["periods"] == 300
    out = result.model.forecast(frame.tail(60))
    assert len(out) == 5 and out["date"].dt.day_of_week.max() <= 4  # business days only
