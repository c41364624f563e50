"""Series checks, features without look-ahead, time-ordered CV, MASE and intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keizoku.errors import DataError, UserInputError
from keizoku.forecast.features import lag_block
from keizoku.forecast.infer import infer_forecast
from keizoku.forecast.series import season_length, split_series
from keizoku.forecast.spec import ForecastCV, ForecastSpec
from keizoku.forecast.train import conformal, cv_folds, fit_forecast, mase_scale


def monthly(n: int = 96, seed: int = 0, ids: tuple[str, ...] = ()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for j, key in enumerate(ids or ("",)):
        t = np.arange(n)
        y = 100 + 5 * j + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.5, n)
        part = pd.DataFrame({"month": pd.date_range("2010-01-01", periods=n, freq="MS"), "y": y})
        if ids:
            part.insert(0, "store", key)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["month"] = frame["month"].dt.strftime("%Y-%m-%d")
    return frame


def test_one_series_is_ordered_and_its_frequency_inferred() -> None:
    frame = monthly(40).sample(frac=1.0, random_state=1)  # shuffled rows
    (s,), freq = split_series(frame, ForecastSpec(time="month"), "y")
    assert freq == "MS" and season_length(freq) == 12
    assert s.index.is_monotonic_increasing and len(s) == 40
    assert np.allclose(s.y, monthly(40)["y"])


def test_duplicate_timestamp_names_both_rows() -> None:
    frame = monthly(30)
    frame.loc[7, "month"] = frame.loc[6, "month"]
    with pytest.raises(
        DataError, match=r"Row 8 of the series repeats timestamp 2010-07-01.* row 7"
    ):
        split_series(frame, ForecastSpec(time="month", frequency="MS"), "y")


def test_duplicates_are_per_series() -> None:
    frame = monthly(30, ids=("a", "b"))
    series, _ = split_series(frame, ForecastSpec(time="month", ids=["store"]), "y")
    assert [s.key for s in series] == [("a",), ("b",)]
    with pytest.raises(DataError, match="repeats timestamp"):
        split_series(frame, ForecastSpec(time="month", frequency="MS"), "y")  # no ids


def test_gap_refused_by_default_and_filled_on_request() -> None:
    frame = monthly(30).drop(index=[10, 11]).reset_index(drop=True)
    spec = ForecastSpec(time="month", frequency="MS")
    with pytest.raises(
        DataError, match=r"misses 2 period\(s\).*2010-11-01 \(before row 11\).*gaps: fill"
    ):
        split_series(frame, spec, "y")
    (s,), _ = split_series(frame, spec.model_copy(update={"gaps": "fill"}), "y")
    assert len(s) == 30 and np.isfinite(s.y).all()
    full = monthly(30)["y"].to_numpy()
    assert s.y[9] == full[9] and min(s.y[9], s.y[12]) <= s.y[10] <= max(s.y[9], s.y[12])


def test_unreadable_and_off_grid_timestamps_name_the_row() -> None:
    frame = monthly(20)
    frame.loc[4, "month"] = "soon"
    with pytest.raises(DataError, match=r"'month' row 5 holds 'soon'"):
        split_series(frame, ForecastSpec(time="month", frequency="MS"), "y")
    frame = monthly(20)
    frame.loc[4, "month"] = "2010-05-15"
    with pytest.raises(DataError, match=r"Row 5 of the series: timestamp 2010-05-15.*'MS' grid"):
        split_series(frame, ForecastSpec(time="month", frequency="MS"), "y")


def test_missing_target_value_names_the_row() -> None:
    frame = monthly(20)
    frame.loc[3, "y"] = np.nan
    with pytest.raises(DataError, match=r"Column 'y' row 4 of the series is missing"):
        split_series(frame, ForecastSpec(time="month"), "y")


def test_horizon_longer_than_history_is_refused_with_the_rows() -> None:
    frame = monthly(20)
    spec = ForecastSpec(time="month", horizon=12, cv=ForecastCV(folds=2))
    with pytest.raises(DataError, match=r"has 20 periods \(rows 1-20\).*needs at least 36"):
        fit_forecast(frame, "y", spec)


def test_rows_without_a_time_column_are_consecutive_periods() -> None:
    frame = monthly(24).drop(columns="month")
    (s,), freq = split_series(frame, ForecastSpec(frequency="MS", start="1949-01-01"), "y")
    assert freq == "MS" and s.index[0] == pd.Timestamp("1949-01-01") and len(s) == 24


def test_lag_features_never_see_the_value_they_predict() -> None:
    y = np.arange(30, dtype=float) ** 1.5
    before = lag_block(y, [2, 3, 12], [3, 12], scale=2.0)
    changed = y.copy()
    changed[20:] += 1000.0  # the future from position 20 on
    after = lag_block(changed, [2, 3, 12], [3, 12], scale=2.0)
    assert np.array_equal(before[:21], after[:21], equal_nan=True)  # row 20 predicts y[20]
    assert not np.allclose(before[21:], after[21:], equal_nan=True)


@pytest.mark.parametrize("scheme", ["expanding", "sliding"])
def test_cv_folds_are_time_ordered_with_a_gap(scheme: str) -> None:
    (s,), _ = split_series(monthly(60), ForecastSpec(time="month"), "y")
    cv = ForecastCV.model_validate({"folds": 3, "gap": 2, "scheme": scheme})
    spec = ForecastSpec(time="month", horizon=6, cv=cv)
    folds = [fold[0] for fold in cv_folds([s], spec, 6, [])]
    ends = [end for _, _, end in folds]
    assert ends == [48, 54, 60]  # the last three windows of six, oldest first
    for _start, train_end, test_end in folds:
        assert test_end - 6 - train_end == 2  # the gap: periods neither fit nor scored
    sizes = [b - a for a, b, _ in folds]
    assert (sizes == [40, 40, 40]) if scheme == "sliding" else (sizes == [40, 46, 52])


def test_mase_scale_is_the_in_sample_seasonal_naive_error() -> None:
    y = np.tile([1.0, 3.0], 12) + np.repeat(np.arange(2.0), 12)
    assert mase_scale(y, 2) == pytest.approx(np.mean(np.abs(y[2:] - y[:-2])))
    assert mase_scale(np.ones(10), 2) == 1.0  # constant: no scale, never a division by 0


def test_conformal_intervals_cover_about_the_level() -> None:
    rng = np.random.default_rng(0)
    errors = rng.normal(0, 1, (40, 1, 4)) * np.array([1.0, 2.0, 3.0, 4.0])
    sigma, q = conformal(errors[:20], np.ones((20, 1)), 0.9)
    inside = np.abs(errors[20:]) <= q * sigma
    assert 0.8 <= inside.mean() <= 0.99
    assert sigma[3] > sigma[0]  # wider at longer steps


def test_lightgbm_beats_seasonal_naive_on_trend_and_season() -> None:
    frame = monthly(96, ids=("a", "b"))
    models: list = ["seasonal_naive", "lightgbm"]  # type: ignore[type-arg]
    spec = ForecastSpec(time="month", ids=["store"], horizon=6, models=models,
                        cv=ForecastCV(folds=2))  # fmt: skip
    result = fit_forecast(frame, "y", spec, max_trials=2)
    board = result.leaderboard.set_index("model")
    assert list(board.index) == ["lightgbm", "seasonal_naive"]
    assert board.loc["lightgbm", "mase"] < board.loc["seasonal_naive", "mase"]
    out = result.model.forecast(frame)
    assert len(out) == 12 and set(out["store"]) == {"a", "b"}
    assert (out["lower"] < out["forecast"]).all() and (out["forecast"] < out["upper"]).all()
    assert str(out["month"].iloc[0].date()) == "2018-01-01"


def test_ets_is_on_the_leaderboard_and_max_trials_caps_it() -> None:
    frame = monthly(48)
    spec = ForecastSpec(time="month", horizon=6, models=["seasonal_naive", "ets"],
                        cv=ForecastCV(folds=2))  # fmt: skip
    result = fit_forecast(frame, "y", spec)
    assert set(result.leaderboard["model"]) == {"seasonal_naive", "ets"}
    assert result.leaderboard.iloc[0]["model"] == "ets"
    only = fit_forecast(frame, "y", spec, max_trials=1)
    assert list(only.leaderboard["model"]) == ["seasonal_naive"]


def test_a_spent_budget_keeps_the_baseline_and_names_what_did_not_run() -> None:
    frame = monthly(48)
    spec = ForecastSpec(time="month", horizon=6, models=["ets", "lightgbm", "seasonal_naive"],
                        cv=ForecastCV(folds=2))  # fmt: skip
    result = fit_forecast(frame, "y", spec, budget_s=0.0)
    assert list(result.leaderboard["model"]) == ["seasonal_naive"]
    assert result.model.info["not_run"] == ["lightgbm", "ets"]  # cheapest first
    assert result.model.info["family"] == "seasonal_naive"


def test_ets_fits_the_recent_past_of_a_long_history() -> None:
    from keizoku.forecast.models import ETS

    y = np.r_[np.full(2000, 500.0), 10 + np.sin(np.arange(240) * 2 * np.pi / 12)]
    ets = ETS()
    ets.season = 12
    fitted = ets._fit(y, (None, False, "add"))
    assert len(fitted.fittedvalues) == 240  # 20 seasons: the level 500 is forgotten
    assert abs(float(fitted.forecast(1)[0]) - 10) < 2


def test_init_infers_forecast_and_task_forecast_names_the_bad_row() -> None:
    frame = monthly(30)
    assert infer_forecast(frame, "y", []) == ForecastSpec(time="month", frequency="MS", horizon=6)
    frame.loc[7, "month"] = frame.loc[6, "month"]
    assert infer_forecast(frame, "y", []) is None  # not unique: a regression, as before
    with pytest.raises(DataError, match=r"Row 8 of the series repeats timestamp 2010-07-01"):
        infer_forecast(frame, "y", [], required=True)
    with pytest.raises(UserInputError, match="no datetime column with a regular frequency"):
        infer_forecast(frame.drop(columns="month"), "y", [], required=True)
