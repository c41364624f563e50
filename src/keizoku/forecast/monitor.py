"""Forecast error as actuals arrive: the logged forecasts against the values that came true.

Every step the server forecasts is logged (``POST /v1/models/{name}/forecast``: inputs
ids, time, step, the interval's ``lower`` and ``upper`` and the exogenous values;
``entity_id``: the series; ``score``: the forecast).

Actuals reach the loop as **feedback** (``record_actuals``, ``keizoku feedback NAME
ACTUALS``): a table of the id columns, the time column and the target; each row is joined
to every logged forecast of that series and period and stored as the feedback label of
that forecast's ``request_id`` (the prediction log's feedback segments, as for a
classifier's labels). ``forecast_error`` then reports the live MAE, RMSE and MASE (scaled
by each series' in-sample seasonal-naive error of the training data, as in CV) and the
interval coverage, overall and per horizon step, beside the CV MASE and coverage the
version was chosen with. The latest forecast of a period counts. ``forecast_error`` also
takes the actuals as a table directly (``keizoku forecast-error NAME ACTUALS``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.labels import canonical
from keizoku.errors import DataError, ValidationError
from keizoku.forecast.series import when
from keizoku.monitoring.feedback import FeedbackReport, Rejection
from keizoku.monitoring.log import FEATURE_PREFIX, segment_files

__all__ = [
    "actual_records",
    "forecast_error",
    "is_forecast",
    "record_actuals",
    "stored_actuals",
]

COLUMNS = ["series", "period", "step", "forecast", "lower", "upper", "ts", "version"]


def is_forecast(name: str) -> bool:
    """Whether ``name``'s champion is a forecasting model (False when there is none)."""
    from keizoku.errors import NotFoundError
    from keizoku.registry.models import get_version

    try:
        return get_version(f"{name}@champion").tags.get("keizoku.task") == "forecast"
    except NotFoundError:
        return False


def _logged(name: str, time_col: str, root: Path | None) -> pd.DataFrame:
    """Every logged forecast step (not shadow), with its ``request_id``."""
    files = segment_files(name, root)
    column = FEATURE_PREFIX + time_col
    parts = [pd.read_parquet(f) for f in files]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if frame.empty or column not in frame.columns:
        return pd.DataFrame(columns=[*COLUMNS, "request_id", "inputs"])
    frame = frame[~frame["shadow"].astype(bool)]
    inputs = [json.loads(text) for text in frame["inputs"]]
    return pd.DataFrame({
        "series": frame["entity_id"].fillna("").astype(str).to_numpy(),
        "period": pd.to_datetime(frame[column]).map(when).to_numpy(),
        "step": pd.to_numeric(frame[FEATURE_PREFIX + "step"]).astype(int).to_numpy(),
        "forecast": frame["score"].astype(float).to_numpy(),
        "lower": [float(i.get("lower", np.nan)) for i in inputs],
        "upper": [float(i.get("upper", np.nan)) for i in inputs],
        "ts": frame["ts"].to_numpy(), "version": frame["version"].to_numpy(),
        "request_id": frame["request_id"].astype(str).to_numpy(),
        "inputs": inputs,
    })  # fmt: skip


def _truth(model: Any, actuals: pd.DataFrame) -> pd.DataFrame:
    """(series, period, actual) of an actuals table; a missing column is a DataError."""
    spec, target = model.spec, str(model.schema.target)
    time_col = spec.time or "time"
    for column in [time_col, target, *spec.ids]:
        if column not in actuals.columns:
            raise DataError(
                f"The actuals lack column '{column}': send {[*spec.ids, time_col, target]} "
                "for the periods that came true."
            )
    raw = actuals[time_col]
    text = raw.astype(str) if spec.time_format and raw.dtype.kind in "iuf" else raw
    periods = pd.to_datetime(text, format=spec.time_format, errors="coerce")
    return pd.DataFrame({
        "series": actuals[spec.ids].astype(str).agg("/".join, axis=1) if spec.ids else "",
        "period": [None if pd.isna(p) else when(p) for p in periods],
        "actual": pd.to_numeric(actuals[target], errors="coerce"),
    }, index=actuals.index)  # fmt: skip


@dataclass(frozen=True)
class _Problem:
    """Why one actual was not stored: the row (1-based), the field and its value."""

    row: int
    series: str
    field: str
    value: Any
    reason: str


def _on_grid(period: str, anchor: str, frequency: str) -> bool:
    """Whether ``period`` lies on the ``frequency`` grid through ``anchor``."""
    a, b = pd.Timestamp(period), pd.Timestamp(anchor)
    grid = pd.date_range(min(a, b), max(a, b), freq=frequency)
    return a in grid and b in grid


def _problems(
    model: Any, actuals: pd.DataFrame, logged: pd.DataFrame
) -> tuple[pd.DataFrame, list[_Problem]]:
    """The rows of ``actuals`` that name a logged forecast (series, period, actual), and
    a problem for each other row: an unreadable time, a series the model never saw nor
    forecast, a time off the frequency's grid, a target that is not a number, a period
    with no logged forecast."""
    spec, target = model.spec, str(model.schema.target)
    time_col = spec.time or "time"
    id_field = "/".join(spec.ids)
    truth = _truth(model, actuals)
    anchors = dict(model.info.get("ends", {}))
    anchors.update(logged.drop_duplicates("series").set_index("series")["period"].to_dict())
    logged_keys = set(zip(logged["series"], logged["period"], strict=True))
    good, problems = [], []
    for i, (series, period, actual) in enumerate(truth.itertuples(index=False), 1):
        raw = actuals.iloc[i - 1]
        who = f"series '{series}'" if series else "the series"
        if not isinstance(period, str):  # unreadable (pandas' str columns hold NaN, not None)
            problems.append(_Problem(i, series, time_col, raw[time_col], (
                f"has {time_col}={raw[time_col]!r}, which cannot be read as a time"
                + (f" (format '{spec.time_format}')" if spec.time_format else "")
            )))  # fmt: skip
        elif series not in anchors:
            known = ", ".join(repr(s) for s in sorted(anchors)[:20])
            problems.append(_Problem(i, series, id_field, series, (
                f"names {id_field}={series!r}, a series the model neither trained on nor "
                f"forecast (known: {known})"
            )))  # fmt: skip
        elif not _on_grid(period, anchors[series], model.frequency):
            problems.append(_Problem(i, series, time_col, raw[time_col], (
                f"has {time_col}={raw[time_col]!r}, not on the model's '{model.frequency}' "
                f"grid of {who} (e.g. {anchors[series]}): send the period's timestamp"
            )))  # fmt: skip
        elif not np.isfinite(actual):
            problems.append(_Problem(i, series, target, raw[target], (
                f"has {target}={raw[target]!r}, not a number: send the value that came true "
                f"for {who} at {period}"
            )))  # fmt: skip
        elif (series, period) not in logged_keys:
            problems.append(_Problem(i, series, time_col, raw[time_col], (
                f"names {who} at {period}, for which no forecast was logged: send actuals of "
                "periods the server forecast (matched on the id columns and the time column)"
            )))  # fmt: skip
        else:
            good.append((series, period, float(actual)))
    return pd.DataFrame(good, columns=["series", "period", "actual"]), problems


def record_actuals(
    name: str,
    actuals: pd.DataFrame,
    *,
    partial: bool = True,
    actor: str | None = None,
    root: Path | None = None,
) -> FeedbackReport:
    """Store the periods that came true as feedback on the forecasts logged for them.

    Each row of ``actuals`` (the id columns, the time column, the target) becomes the label
    of every logged forecast of that series and period. A row with an unreadable time, a
    series the model does not know, a time off the frequency's grid, a target that is not a
    number or no logged forecast is not stored. ``partial=True`` (CLI): the others are,
    and the report names each rejected row. ``partial=False`` (REST): ValidationError
    (422) naming the first bad row, field and value, and nothing is stored. What is stored
    is audited as one ``feedback`` entry.
    """
    from keizoku import audit
    from keizoku.monitoring.feedback import _write
    from keizoku.registry.models import load_model

    model: Any = load_model(f"{name}@champion")
    logged = _logged(name, model.spec.time or "time", root)
    good, problems = _problems(model, actuals, logged)
    if problems and not partial:
        first = problems[0]
        raise ValidationError(
            f"Actual {first.row} for '{name}' {first.reason}. {len(problems)} of "
            f"{len(actuals)} actual(s) rejected; nothing was stored.",
            details=[{"loc": ["body", p.row - 1, p.field], "field": p.field,
                      "value": _plain(p.value), "msg": p.reason} for p in problems[:100]],
        )  # fmt: skip
    by_period = logged.groupby(["series", "period"])["request_id"].agg(list).to_dict()
    now, rows = time.time(), []
    for series, period, actual in good.itertuples(index=False):
        for rid in by_period[(series, period)]:
            rows.append({"request_id": rid, "entity_id": None, "label": canonical(actual),
                         "label_num": actual, "ts": now, "received_ts": now})  # fmt: skip
    rejected = [Rejection(p.row, None, p.series or None, _plain(p.value), p.reason)
                for p in problems]  # fmt: skip
    report = FeedbackReport(name, 0, rejected)
    if rows:
        _write(name, rows, root)
        report.stored = len(rows)
        audit.record(
            name, "feedback", actor=actor,
            reason=f"{len(good)} actual(s) stored on {len(rows)} logged "
                   f"forecast(s), {len(rejected)} rejected",
            evidence={"stored": len(rows), "rejected": len(rejected),
                      "reasons": sorted({r.reason for r in rejected})[:10]},
        )  # fmt: skip
    return report


def _plain(value: Any) -> Any:
    """A cell as JSON holds it (numpy scalars as Python's, missing as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if value is None or isinstance(value, str | int | float) else str(value)


def actual_records(name: str, records: list[dict[str, Any]]) -> pd.DataFrame:
    """Actuals sent as JSON records (``POST /v1/models/{name}/feedback`` on a forecasting
    model) as a table; a record that lacks a field is a ValidationError naming it."""
    from keizoku.registry.models import load_model

    model: Any = load_model(f"{name}@champion")
    spec, target = model.spec, str(model.schema.target)
    fields = [*spec.ids, spec.time or "time", target]
    for i, record in enumerate(records):
        missing = [f for f in fields if f not in record]
        if missing:
            raise ValidationError(
                f"Actual {i + 1} for '{name}' lacks field '{missing[0]}': a forecasting model "
                f"takes the periods that came true as records of {fields} (the id columns, "
                "the time column, the target).",
                details=[{"loc": ["body", i, f], "field": f, "msg": "field required"}
                         for f in missing],
            )  # fmt: skip
    return pd.DataFrame.from_records(records, columns=fields)


def _labelled(name: str, logged: pd.DataFrame, root: Path | None) -> pd.DataFrame:
    """``logged`` joined with the actuals stored as feedback (column ``actual``)."""
    from keizoku.monitoring.performance import labelled_rows

    labels = labelled_rows(name, columns="p.request_id", root=root)
    truth = labels.rename(columns={"label_num": "actual"})[["request_id", "actual"]]
    return logged.merge(truth.drop_duplicates("request_id"), on="request_id", how="inner")


def stored_actuals(name: str, root: Path | None = None) -> pd.DataFrame:
    """The actuals stored by ``record_actuals``: one row per series and period (the id
    columns, the time column as timestamps, the target, the exogenous values logged with
    the forecast), oldest first."""
    from keizoku.registry.models import load_model

    model: Any = load_model(f"{name}@champion")
    spec, target = model.spec, str(model.schema.target)
    time_col = spec.time or "time"
    both = _labelled(name, _logged(name, time_col, root), root)
    both = both.sort_values("ts").drop_duplicates(["series", "period"], keep="last")
    columns = [*spec.ids, time_col, target, *spec.exogenous]
    records = []
    for inputs, actual in zip(both["inputs"], both["actual"], strict=True):
        row = {c: inputs.get(c) for c in columns}
        row[time_col], row[target] = pd.Timestamp(inputs[time_col]), float(actual)
        records.append(row)
    out = pd.DataFrame.from_records(records, columns=columns)
    return out.sort_values(time_col, kind="stable").reset_index(drop=True)


def forecast_error(
    name: str,
    actuals: pd.DataFrame | None = None,
    *,
    version: int | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Live error of ``name``'s logged forecasts against ``actuals`` (a table), or against
    the actuals stored as feedback when ``actuals`` is None (see the module doc)."""
    from keizoku.registry.models import load_model

    model: Any = load_model(f"{name}:{version}" if version else f"{name}@champion")
    logged = _logged(name, model.spec.time or "time", root)
    latest = logged.sort_values("ts").drop_duplicates(["series", "period"], keep="last")
    if actuals is not None:
        truth = _truth(model, actuals).dropna(subset=["actual", "period"])
        both = latest.merge(truth, on=["series", "period"], how="inner")
    else:
        both = _labelled(name, latest, root)
    scales = model.info.get("scales", {})
    both["scale"] = both["series"].map(lambda s: float(scales.get(s, 1.0)))
    both["error"] = (both["actual"] - both["forecast"]).abs()
    bounded = both.dropna(subset=["lower", "upper"])
    inside = (bounded["lower"] <= bounded["actual"]) & (bounded["actual"] <= bounded["upper"])
    by_step = both.groupby("step")["error"].mean() if len(both) else pd.Series(dtype=float)
    some = len(both) > 0  # None below: no logged forecast has its actual yet
    return {
        "model": name,
        "matched": len(both),
        "logged": len(latest),
        "source": "table" if actuals is not None else "feedback",
        "mae": float(both["error"].mean()) if some else None,
        "rmse": float(np.sqrt((both["error"] ** 2).mean())) if some else None,
        "mase": float((both["error"] / both["scale"]).mean()) if some else None,
        "coverage": float(inside.mean()) if len(bounded) else None,
        "level": float(model.info.get("level", float("nan"))),
        "cv_mase": float(model.info.get("cv_score", float("nan"))),
        "cv_coverage": float(model.info.get("coverage", float("nan"))),
        "mae_by_step": {int(k): float(v) for k, v in by_step.items()},
    }
