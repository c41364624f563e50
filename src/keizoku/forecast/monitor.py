"""Forecast error as actuals arrive: the logged forecasts against the values that came true.

Every step the server forecasts is logged (``POST /v1/models/{name}/forecast``: inputs
ids, time, step; ``entity_id``: the series; ``score``: the forecast). ``forecast_error``
joins those records with actuals (the id columns, the time column, the target) on series
and period and reports the live MAE, RMSE and MASE (scaled by each series' in-sample
seasonal-naive error of the training data, as in CV) overall and per horizon step, beside
the CV MASE the version was chosen with. The latest forecast of a period counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.errors import DataError
from keizoku.forecast.series import when
from keizoku.monitoring.log import FEATURE_PREFIX, segment_files

__all__ = ["forecast_error"]


def _logged(name: str, time_col: str, root: Path | None) -> pd.DataFrame:
    files = segment_files(name, root)
    column = FEATURE_PREFIX + time_col
    parts = [pd.read_parquet(f) for f in files]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if frame.empty or column not in frame.columns:
        return pd.DataFrame(columns=["series", "period", "step", "forecast", "ts", "version"])
    frame = frame[~frame["shadow"].astype(bool)]
    return pd.DataFrame({
        "series": frame["entity_id"].fillna("").astype(str),
        "period": pd.to_datetime(frame[column]).map(when),
        "step": pd.to_numeric(frame[FEATURE_PREFIX + "step"]).astype(int),
        "forecast": frame["score"].astype(float),
        "ts": frame["ts"], "version": frame["version"],
    })  # fmt: skip


def forecast_error(
    name: str, actuals: pd.DataFrame, *, version: int | None = None, root: Path | None = None
) -> dict[str, Any]:
    """Live error of ``name``'s logged forecasts against ``actuals`` (see the module doc)."""
    from keizoku.registry.models import load_model

    model: Any = load_model(f"{name}:{version}" if version else f"{name}@champion")
    spec, target = model.spec, str(model.schema.target)
    time_col = spec.time or "time"
    for column in [time_col, target, *spec.ids]:
        if column not in actuals.columns:
            raise DataError(
                f"The actuals lack column '{column}': send {[*spec.ids, time_col, target]} "
                "for the periods that came true."
            )
    truth = pd.DataFrame({
        "series": actuals[spec.ids].astype(str).agg("/".join, axis=1) if spec.ids else "",
        "period": pd.to_datetime(actuals[time_col]).map(when),
        "actual": pd.to_numeric(actuals[target], errors="coerce"),
    }).dropna(subset=["actual"])  # fmt: skip
    logged = _logged(name, time_col, root)
    latest = logged.sort_values("ts").drop_duplicates(["series", "period"], keep="last")
    both = latest.merge(truth, on=["series", "period"], how="inner")
    scales = model.info.get("scales", {})
    both["scale"] = both["series"].map(lambda s: float(scales.get(s, 1.0)))
    both["error"] = (both["actual"] - both["forecast"]).abs()
    by_step = both.groupby("step")["error"].mean() if len(both) else pd.Series(dtype=float)
    some = len(both) > 0  # None below: no logged forecast has its actual yet
    return {
        "model": name,
        "matched": len(both),
        "logged": len(latest),
        "mae": float(both["error"].mean()) if some else None,
        "rmse": float(np.sqrt((both["error"] ** 2).mean())) if some else None,
        "mase": float((both["error"] / both["scale"]).mean()) if some else None,
        "cv_mase": float(model.info.get("cv_score", float("nan"))),
        "mae_by_step": {int(k): float(v) for k, v in by_step.items()},
    }
