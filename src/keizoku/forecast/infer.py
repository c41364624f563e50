"""``keizoku init``: is this table a forecasting task, and with what ``forecast:`` section?

A forecasting task: a datetime column (parsed from text, or a datetime type) whose sorted
values are unique (or unique within each ``--id`` series) and regular (a frequency pandas
can name), and a numeric target. The horizon defaults to one season (12 for monthly
data), at most a fifth of the shortest series.
"""

from __future__ import annotations

import warnings

import pandas as pd

from keizoku.errors import UserInputError
from keizoku.forecast.series import infer_frequency, season_length, split_series
from keizoku.forecast.spec import ForecastSpec

__all__ = ["infer_forecast"]


def _datetime_columns(frame: pd.DataFrame, skip: set[str]) -> list[tuple[str, pd.Series]]:
    out = []
    for name in frame.columns:
        if name in skip:
            continue
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            out.append((name, col))
        elif col.dtype == object or pd.api.types.is_string_dtype(col):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(col, errors="coerce", format="ISO8601")
            if len(col) and parsed.notna().all():
                out.append((name, parsed))
    return out


def infer_forecast(
    frame: pd.DataFrame, target: str, ids: list[str], *, required: bool = False
) -> ForecastSpec | None:
    """The ``forecast:`` section for ``frame``, or None when it is not a forecasting task
    (``required``: ``--task forecast`` was given; then say what is missing instead)."""
    numeric = target in frame.columns and pd.api.types.is_numeric_dtype(frame[target])
    found = _datetime_columns(frame, {target, *ids}) if numeric else []
    for name, times in found:
        groups = frame.groupby(ids, sort=False).indices if ids else {(): range(len(frame))}
        freqs, shortest = set(), len(frame)
        for positions in groups.values():
            index = pd.DatetimeIndex(times.iloc[list(positions)]).sort_values()
            freqs.add(infer_frequency(index) if index.is_unique else None)
            shortest = min(shortest, len(index))
        if len(freqs) == 1 and None not in freqs:
            freq = str(freqs.pop())
            horizon = max(1, min(season_length(freq), shortest // 5))
            return ForecastSpec(time=name, frequency=freq, ids=list(ids), horizon=horizon)
    if required and found:  # say what is wrong with the best candidate, naming the row
        split_series(frame, ForecastSpec(time=found[0][0], ids=list(ids)), target)
    if required:
        what = "numeric target" if not numeric else "datetime column with a regular frequency"
        raise UserInputError(
            f"--task forecast: the data has no {what}"
            + (" (unique within each --id series)" if ids and numeric else "")
            + ". Name the time column in keizoku.yaml's forecast.time (with forecast.frequency "
            "for irregular or coded timestamps), or rows being consecutive periods: "
            "forecast.frequency and forecast.start."
        )
    return None
