"""Train a forecaster: time-ordered CV, a MASE leaderboard, conformal intervals.

CV: ``folds`` windows of ``horizon`` periods at the end of every series, oldest first;
each fold's models are fitted on the periods before the window less ``gap`` (all of them:
``expanding``; the same number each fold: ``sliding``) and forecast ``gap + horizon``
periods, of which the last ``horizon`` are scored. Never shuffled.

MASE: the fold's mean absolute error over the in-sample mean absolute error of the
seasonal-naive forecast on the fold's training periods (one season back; one period back
when the history is shorter than two seasons). The leaderboard's score is the mean over
folds and series; the lowest wins.

Intervals: normalised split conformal on the winner's CV errors. Each horizon step ``h``
has a spread ``sigma[h]`` (its mean absolute scaled error, smoothed across steps as
``a * h ** b``); the interval is the forecast ±
``q * sigma[h] * scale`` where ``q`` is the conformal quantile of the errors over their
spread at ``level``, its "+1" counted as one more trajectory of ``horizon`` errors (s7:
errors along one forecast move together; decision 0017). The coverage reported is
cross-conformal: each fold's actuals against an interval calibrated on the other folds.
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Column, Schema
from keizoku.errors import DataError, KeizokuWarning, UserInputError
from keizoku.forecast.model import ForecastModel
from keizoku.forecast.models import Forecaster, make
from keizoku.forecast.series import Series, season_length, series_name, split_series, when
from keizoku.forecast.spec import ForecastSpec

__all__ = ["ForecastResult", "cv_folds", "fit_forecast", "forecast_schema", "mase_scale"]

MIN_TRAIN = 4  # fewest periods a fold may train on


@dataclass
class ForecastResult:
    model: ForecastModel
    leaderboard: pd.DataFrame
    cv_score: float
    coverage: float
    elapsed_s: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    # the winner's CV errors[fold, series, step] and scales[fold, series] (its intervals)
    errors: np.ndarray | None = None
    scales: np.ndarray | None = None


def forecast_schema(frame: pd.DataFrame, target: str, fs: ForecastSpec) -> Schema:
    """The served schema: target, time and id columns, exogenous features; others ignored."""
    columns = []
    for name in frame.columns:
        if name == target:
            columns.append(Column(name=name, kind="numeric", role="target", dtype="float"))
        elif name == fs.time:
            columns.append(Column(name=name, kind="datetime", role="id", dtype="str", note="time"))
        elif name in fs.ids:
            columns.append(Column(name=name, kind="id", role="id", dtype="str", note="series id"))
        elif name in fs.exogenous:
            columns.append(Column(name=name, kind="numeric", role="feature", note="exogenous"))
        else:
            columns.append(Column(name=name, kind="numeric", role="ignored", dtype="str"))
    return Schema(columns=columns, target=target, task="forecast")


COST = ("seasonal_naive", "lightgbm", "ets")  # the forecasters by fitting time on long series


def _cut(s: Series, start: int, end: int) -> Series:
    return replace(s, index=s.index[start:end], y=s.y[start:end], exog=s.exog[start:end],
                   rows=s.rows[start:end])  # fmt: skip


def mase_scale(y: np.ndarray, season: int) -> float:
    """In-sample mean absolute error of the seasonal-naive forecast (one period back when
    the history is shorter than two seasons, 1.0 for a constant history)."""
    m = season if len(y) >= 2 * season else 1
    if len(y) <= m:
        return 1.0
    value = float(np.mean(np.abs(y[m:] - y[:-m])))
    return value if value > 1e-12 else 1.0


def cv_folds(
    series: list[Series], fs: ForecastSpec, horizon: int, ids: list[str]
) -> list[list[tuple[int, int, int]]]:
    """Per fold, per series: (train start, train end, test end); test = [end - horizon, end)."""
    k, gap = fs.cv.folds, fs.cv.gap
    need = k * horizon + gap + max(MIN_TRAIN, horizon)
    for s in series:
        if len(s) < need:
            raise DataError(
                f"{series_name(s.key, ids).capitalize()} has {len(s)} periods (rows "
                f"{int(s.rows[0])}-{int(s.rows[-1])}); a horizon of {horizon} with "
                f"{k} CV fold(s) and a gap of {gap} needs at least {need} (the history before "
                "the first fold must be at least one horizon). Lower forecast.horizon or "
                "forecast.cv.folds, or supply more history."
            )
    sliding = min(len(s) for s in series) - k * horizon - gap
    folds = []
    for i in range(k):
        fold = []
        for s in series:
            test_end = len(s) - (k - 1 - i) * horizon
            train_end = test_end - horizon - gap
            start = max(train_end - sliding, 0) if fs.cv.scheme == "sliding" else 0
            fold.append((start, train_end, test_end))
        folds.append(fold)
    return folds


def _evaluate(
    name: str, series: list[Series], folds: list[list[tuple[int, int, int]]], fs: ForecastSpec,
    horizon: int, season: int, freq: str, seed: int, deadline: float = np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:  # fmt: skip
    """(errors, scales, forecasts): errors[f, s, h] = actual - forecast; scales[f, s].

    None when ``deadline`` (a ``time.monotonic()``) passes before the last fold starts.
    """
    shape = (len(folds), len(series), horizon)
    errors, preds = np.zeros(shape), np.zeros(shape)
    scales = np.ones(shape[:2])
    for f, fold in enumerate(folds):
        if time.monotonic() > deadline:
            return None
        train = [_cut(s, a, b) for s, (a, b, _) in zip(series, fold, strict=True)]
        model = make(name, seed)
        model.fit(train, season, freq)
        for j, (s, (_, b, end)) in enumerate(zip(series, fold, strict=True)):
            steps = end - b
            out = model.forecast(train[j], steps, s.exog[b:end])[-horizon:]
            preds[f, j] = out
            errors[f, j] = s.y[end - horizon : end] - out
            scales[f, j] = mase_scale(train[j].y, season)
    return errors, scales, preds


def conformal(
    errors: np.ndarray, scales: np.ndarray, level: float, *, count: str = "trajectories"
) -> tuple[np.ndarray, float]:
    """(sigma per horizon step, q): the interval at step h is ± q * sigma[h] * scale.

    ``q`` is the split-conformal quantile of the errors over their spread, its
    finite-sample "+1" counted as one more **trajectory** (s7): the new forecast is a whole
    horizon of errors, as each calibration fold of a series is, and they move together
    (a trend missed at step 1 is missed at every step), so the rank is
    ``ceil((n + horizon) * level)`` of the ``n`` pooled errors, at most the largest.
    ``count="points"`` is the s6 rank ``ceil((n + 1) * level)`` (the bench's before/after).
    """
    scaled = np.abs(errors) / scales[:, :, None]
    sigma = smooth_spread(scaled.reshape(-1, scaled.shape[2]).mean(axis=0))
    scores = np.sort((scaled / sigma).ravel())
    extra = scaled.shape[2] if count == "trajectories" else 1
    rank = math.ceil((len(scores) + extra) * level)
    q = float(scores[min(rank, len(scores)) - 1]) if len(scores) else 1.0
    return sigma, q


def smooth_spread(raw: np.ndarray) -> np.ndarray:
    """The spread per horizon step as ``a * h ** b`` (least squares in logs, 0 <= b <= 1.5):
    each step's mean error rests on folds x series errors only, too few to use alone."""
    raw = np.maximum(raw, 1e-9)
    if len(raw) < 3:
        return raw
    steps = np.log(np.arange(1, len(raw) + 1))
    b, a = np.polyfit(steps, np.log(raw), 1)
    b = float(np.clip(b, 0.0, 1.5))
    a = float(np.mean(np.log(raw) - b * steps))
    return np.asarray(np.exp(a + b * steps), dtype=float)


def cross_coverage(
    errors: np.ndarray, scales: np.ndarray, level: float, *, count: str = "trajectories"
) -> float:
    """Share of CV actuals inside an interval calibrated on the other folds."""
    if errors.shape[0] < 2:
        sigma, q = conformal(errors, scales, level, count=count)
        return float(np.mean(np.abs(errors) / scales[:, :, None] <= q * sigma))
    inside = []
    for f in range(errors.shape[0]):
        rest = [g for g in range(errors.shape[0]) if g != f]
        sigma, q = conformal(errors[rest], scales[rest], level, count=count)
        inside.append(np.abs(errors[f]) / scales[f][:, None] <= q * sigma)
    return float(np.mean(inside))


def fit_forecast(
    frame: pd.DataFrame,
    target: str,
    fs: ForecastSpec,
    *,
    budget_s: float = 60.0,
    max_trials: int | None = None,
    seed: int = 0,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> ForecastResult:
    """Evaluate the spec's forecasters by time-ordered CV; fit the best on all the data."""
    started = time.monotonic()
    if target in ([fs.time] + fs.ids + fs.exogenous):
        raise UserInputError(
            f"The target '{target}' is also named in forecast.time/ids/exogenous; "
            "the target must be its own column."
        )
    series, freq = split_series(frame, fs, target, window=fs.window)
    season = season_length(freq, fs.season)
    horizon = fs.horizon
    folds = cv_folds(series, fs, horizon, fs.ids)
    # cheapest first, so a short budget still sees the global model on long series
    order = sorted({"seasonal_naive", *fs.models}, key=COST.index)
    if "ets" in order and importlib.util.find_spec("statsmodels") is None:
        order.remove("ets")
        warnings.warn(
            "ETS is left off the leaderboard: statsmodels is not installed "
            "(pip install 'keizoku[forecast]').",
            KeizokuWarning,
            stacklevel=2,
        )
    rows: list[dict[str, Any]] = []
    cv: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    not_run: list[str] = []
    for name in order:
        if max_trials is not None and len(rows) >= max_trials:
            break
        timed = bool(rows) and max_trials is None  # max_trials: deterministic, whatever the clock
        if timed and time.monotonic() - started > budget_s:
            not_run.append(name)
            continue
        tick = time.monotonic()
        deadline = started + budget_s if timed else np.inf  # the baseline always completes
        done = _evaluate(name, series, folds, fs, horizon, season, freq, seed, deadline)
        if done is None:
            not_run.append(name)
            continue
        errors, scales, _ = done
        mase = float(np.mean(np.abs(errors).mean(axis=2) / scales))
        row = {
            "model": name,
            "mase": mase,
            "mae": float(np.abs(errors).mean()),
            "rmse": float(np.sqrt((errors**2).mean())),
            "coverage": cross_coverage(errors, scales, fs.level),
            "fit_time_s": time.monotonic() - tick,
            "on_leaderboard": name in fs.models,
        }
        cv[name] = (errors, scales)
        rows.append(row)
        if on_trial is not None:
            on_trial(row)
    board = pd.DataFrame(rows)
    ranked = board[board["on_leaderboard"]] if board["on_leaderboard"].any() else board
    best = str(ranked.sort_values("mase", kind="stable").iloc[0]["model"])
    errors, scales = cv[best]
    sigma, q = conformal(errors, scales, fs.level)
    final: Forecaster = make(best, seed)
    final.fit(series, season, freq)
    best_row = board[board["model"] == best].iloc[0]
    naive = float(board[board["model"] == "seasonal_naive"].iloc[0]["mase"])
    info = {
        "task": "forecast",
        "family": best,
        "cv_score": float(best_row["mase"]),
        "metric": "mase",
        "seasonal_naive_mase": naive,
        "not_run": not_run,  # out of the budget (``train.budget``)
        "coverage": float(best_row["coverage"]),
        "level": fs.level,
        "horizon": horizon,
        "frequency": freq,
        "season": season,
        "folds": fs.cv.folds,
        "scheme": fs.cv.scheme,
        "gap": fs.cv.gap,
        "series": len(series),
        "periods": int(sum(len(s) for s in series)),
        "interval_q": q,
        # MASE scale per series ("/"-joined ids), for the monitor's live MASE
        "scales": {"/".join(map(str, s.key)): mase_scale(s.y, season) for s in series},
        # the last period trained on per series, for the retrain's "new periods" trigger
        "ends": {"/".join(map(str, s.key)): when(s.index[-1]) for s in series},
    }
    schema = forecast_schema(frame, target, fs)
    model = ForecastModel(schema, fs, freq, season, final, sigma, q, info)
    board = board.sort_values("mase", kind="stable").reset_index(drop=True)
    return ForecastResult(
        model, board, float(best_row["mase"]), float(best_row["coverage"]),
        time.monotonic() - started, rows, errors, scales,
    )  # fmt: skip
