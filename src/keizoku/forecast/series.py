"""Series out of a table: one per id, in time order, on a regular grid, checked.

Every refusal names the row (``row N``: the N-th data row, header not counted), the
series and the fix: a timestamp that cannot be read, the same timestamp twice within a
series, a timestamp off the frequency's grid, a missing period (``gaps: error``; ``fill``
inserts it), a missing target value, a history shorter than the model needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.errors import DataError, UserInputError
from keizoku.forecast.spec import ForecastSpec

__all__ = [
    "Series",
    "future_exogenous",
    "infer_frequency",
    "season_length",
    "series_name",
    "split_series",
    "times_of",
    "week_length",
    "when",
]

DEFAULT_START = "2000-01-01"

# Seasonal period by the frequency's base unit (pandas offset name, upper-cased, no anchor).
SEASONS = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "W": 52, "D": 7, "B": 5,
           "H": 24, "BH": 8, "MIN": 60, "T": 60}  # fmt: skip


@dataclass
class Series:
    """One series: its id values, timestamps, target and exogenous values."""

    key: tuple[Any, ...]
    index: pd.DatetimeIndex
    y: np.ndarray
    exog: np.ndarray  # (n, k): the spec's exogenous columns, in order
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # data row numbers

    def __len__(self) -> int:
        return len(self.y)


def series_name(key: tuple[Any, ...], ids: list[str]) -> str:
    return (
        "the series"
        if not ids
        else "series " + ", ".join(f"{c}={v}" for c, v in zip(ids, key, strict=True))
    )


# A second, longer season by base unit: the week of hourly data (its lag is a feature of
# the gradient-boosted forecaster; the seasonal period stays the day).
WEEKS = {"H": 168, "BH": 40}


def week_length(frequency: str) -> int | None:
    """The periods in a week for sub-daily ``frequency`` (168 hourly), else None."""
    base = pd.tseries.frequencies.to_offset(frequency).rule_code.upper().split("-")[0]
    return WEEKS.get(base)


def season_length(frequency: str, given: int | None = None) -> int:
    """The seasonal period of ``frequency`` (12 for monthly, 7 for daily, ...)."""
    if given:
        return given
    base = pd.tseries.frequencies.to_offset(frequency).rule_code.upper().split("-")[0]
    return SEASONS.get(base, SEASONS.get(base.rstrip("S"), 1))


def times_of(frame: pd.DataFrame, fs: ForecastSpec) -> pd.Series:
    """The timestamp of each row of ``frame`` (read with ``forecast.time_format``; without a
    time column, consecutive periods from ``forecast.start``); an unreadable one is an error
    naming the row."""
    if fs.time is None:
        if not fs.frequency:
            raise UserInputError(
                "forecast: without a time column (forecast.time) the rows are consecutive "
                "periods: set forecast.frequency (e.g. MS, D, h) and optionally forecast.start."
            )
        if fs.ids:
            raise UserInputError(
                "forecast: many series (forecast.ids) need a time column (forecast.time)."
            )
        start = fs.start or DEFAULT_START
        return pd.Series(pd.date_range(start, periods=len(frame), freq=fs.frequency), frame.index)
    if fs.time not in frame.columns:
        raise DataError(
            f"forecast.time: column '{fs.time}' is not in the data; columns are "
            f"{list(frame.columns)}."
        )
    raw = frame[fs.time]
    text = raw.astype(str) if fs.time_format and raw.dtype.kind in "iuf" else raw
    parsed = pd.to_datetime(text, format=fs.time_format, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        hint = f" with format '{fs.time_format}'" if fs.time_format else ""
        raise DataError(
            f"Column '{fs.time}' row {i + 1} holds {raw.iloc[i]!r}, not a timestamp{hint}; "
            f"{len(bad)} row(s) cannot be read. Fix the value or set forecast.time_format "
            "(e.g. '%Y-%m-%d', '%y%m%d')."
        )
    return pd.Series(pd.DatetimeIndex(parsed).tz_localize(None), frame.index)


def infer_frequency(index: pd.DatetimeIndex) -> str | None:
    """A regular frequency of sorted, unique timestamps (None when there is none)."""
    if len(index) < 3:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 4 returns an offset: handled below
            found: Any = pd.infer_freq(index)
    except (TypeError, ValueError):
        return None
    return None if found is None else str(getattr(found, "freqstr", found))


def when(ts: Any) -> str:
    """A timestamp as users write it: the date alone at midnight."""
    stamp = pd.Timestamp(ts)
    return str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat()


def _check_column(values: np.ndarray, rows: np.ndarray, column: str, name: str, fill: bool) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad) and not fill:
        raise DataError(
            f"Column '{column}' row {int(rows[bad[0]])} of {name} is missing or not a number "
            f"({len(bad)} such row(s)); supply it or set forecast.gaps: fill to interpolate."
        )


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        raise DataError(f"Column '{column}' is not in the data; columns are {list(frame.columns)}.")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"Column '{column}' row {i + 1} holds {frame[column].iloc[i]!r}, not a number; "
            "a forecast target and exogenous columns must be numeric."
        )
    return np.asarray(values, dtype=float)


def split_series(
    frame: pd.DataFrame,
    fs: ForecastSpec,
    target: str,
    *,
    frequency: str | None = None,
    need_target: bool = True,
    window: int | None = None,
) -> tuple[list[Series], str]:
    """The series of ``frame`` and their frequency (``frequency`` or the spec's or inferred).

    ``window``: keep the last N periods of each series (rolling retraining).
    """
    frame = frame.reset_index(drop=True)
    times = times_of(frame, fs)
    y = _numeric(frame, target) if need_target else np.full(len(frame), np.nan)
    exog = np.column_stack([_numeric(frame, c) for c in fs.exogenous]) if fs.exogenous else (
        np.zeros((len(frame), 0))
    )  # fmt: skip
    for c in fs.ids:
        if c not in frame.columns:
            raise DataError(
                f"forecast.ids: column '{c}' is not in the data; columns are {list(frame.columns)}."
            )
    groups = frame.groupby(fs.ids, sort=False).indices if fs.ids else {(): np.arange(len(frame))}
    freq = frequency or fs.frequency
    out: list[Series] = []
    for raw_key, positions in groups.items():
        key = raw_key if isinstance(raw_key, tuple) else (raw_key,)
        name = series_name(key, fs.ids)
        pos = np.asarray(positions)[np.argsort(times.to_numpy()[positions], kind="stable")]
        index = pd.DatetimeIndex(times.to_numpy()[pos])
        dup = np.flatnonzero(index[1:] == index[:-1])
        if len(dup):
            a, b = sorted((int(pos[dup[0]]) + 1, int(pos[dup[0] + 1]) + 1))
            raise DataError(
                f"Row {b} of {name} repeats timestamp {when(index[dup[0]])} of row {a}: each "
                "period "
                "may appear once per series. Remove the duplicate, or name the column that "
                "tells the series apart in forecast.ids."
            )
        freq = freq or infer_frequency(index)
        if freq is None:
            raise DataError(
                f"No regular frequency in the timestamps of {name} (first {when(index[0])}, "
                f"{len(index)} rows): set forecast.frequency (e.g. MS, D, B, h)."
            )
        out.append(_regular(key, name, index, pos, y, exog, fs, freq, need_target, target))
    if freq is None:
        raise DataError("The data has no rows: a forecast needs the history of a series.")
    if window is not None:
        for s in out:
            keep = slice(max(len(s) - window, 0), None)
            s.index, s.y, s.exog, s.rows = s.index[keep], s.y[keep], s.exog[keep], s.rows[keep]
    return out, freq


def _regular(
    key: tuple[Any, ...],
    name: str,
    index: pd.DatetimeIndex,
    pos: np.ndarray,
    y: np.ndarray,
    exog: np.ndarray,
    fs: ForecastSpec,
    freq: str,
    need_target: bool,
    target: str,
) -> Series:
    grid = pd.date_range(index[0], index[-1], freq=freq)
    off = ~index.isin(grid)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(
            f"Row {int(pos[i]) + 1} of {name}: timestamp {when(index[i])} is not on the "
            f"'{freq}' grid that starts at {when(index[0])}. Fix the timestamp or set "
            "forecast.frequency to the data's frequency."
        )
    rows = pos + 1
    ys, xs = y[pos], exog[pos]
    fill = fs.gaps == "fill"
    if len(grid) != len(index):
        missing = grid.difference(index)
        after = int(np.searchsorted(index, missing[0]))
        if not fill:
            raise DataError(
                f"{name[0].upper()}{name[1:]} misses {len(missing)} period(s) of '{freq}', "
                f"the first {when(missing[0])} (before row {int(rows[after])}). Supply the "
                "rows, or "
                "set forecast.gaps: fill to insert them with interpolated values."
            )
        where = grid.get_indexer(index)
        full_y = np.full(len(grid), np.nan)
        full_x = np.full((len(grid), xs.shape[1]), np.nan)
        full_rows = np.zeros(len(grid), dtype=int)
        full_y[where], full_x[where], full_rows[where] = ys, xs, rows
        ys, xs, rows = full_y, full_x, full_rows
    if need_target:
        _check_column(ys, rows, target, name, fill)
    for j, column in enumerate(fs.exogenous):
        _check_column(xs[:, j], rows, column, name, fill)
    if fill:
        ys = _interpolate(ys) if need_target else ys
        xs = np.column_stack([_interpolate(xs[:, j]) for j in range(xs.shape[1])]) if (
            xs.shape[1]
        ) else xs  # fmt: skip
    return Series(key, grid, ys, xs, rows)


def _interpolate(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.Series(values).interpolate(limit_direction="both"), dtype=float)


def future_exogenous(
    frame: pd.DataFrame | None, fs: ForecastSpec, series: list[Series], freq: str, horizon: int
) -> dict[tuple[Any, ...], np.ndarray]:
    """The exogenous values of the next ``horizon`` periods of each series, checked."""
    if not fs.exogenous:
        return {s.key: np.zeros((horizon, 0)) for s in series}
    if frame is None or frame.empty:
        raise DataError(
            f"The model uses exogenous column(s) {fs.exogenous}: send their values for the "
            f"next {horizon} period(s) of each series (the 'future' rows)."
        )
    future, _ = split_series(frame, fs, fs.exogenous[0], frequency=freq, need_target=False)
    by_key = {f.key: f for f in future}
    out = {}
    for s in series:
        name = series_name(s.key, fs.ids)
        want = pd.date_range(s.index[-1], periods=horizon + 1, freq=freq)[1:]
        got = by_key.get(s.key)
        if got is None or not want.isin(got.index).all():
            first = want[0] if got is None else want[~want.isin(got.index)][0]
            raise DataError(
                f"The future rows lack {when(first)} for {name}: send the exogenous column(s) "
                f"{fs.exogenous} for each of the next {horizon} period(s) after "
                f"{when(s.index[-1])}."
            )
        out[s.key] = got.exog[got.index.get_indexer(want)]
    return out
