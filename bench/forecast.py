"""Forecasting: keizoku's pick vs seasonal naive, LightGBM with lags and ETS, on every series
of ../shared/datasets/timeseries/ (skipped, with a note, when that folder is absent).

    python bench/forecast.py [--out bench/work/forecast.json] [--only AirPassengers,...]

Per series: the last ``horizon`` periods are the test window, never seen in training.
keizoku (``keizoku.forecast.train.fit_forecast``: time-ordered CV, MASE leaderboard,
conformal intervals) trains on the rest; each baseline (seasonal naive; LightGBM with lags,
recursive; ETS with its form chosen by AIC from statsmodels) is fitted on the same periods.
MASE = test MAE / in-sample seasonal-naive MAE of the training periods. Coverage: the share
of test actuals inside keizoku's interval (nominal ``level``), and the cross-conformal CV
coverage keizoku reports. Prints a Markdown table; ``--out`` writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.forecast.models import make
from keizoku.forecast.series import season_length, split_series
from keizoku.forecast.spec import ForecastSpec
from keizoku.forecast.train import _cut, fit_forecast, mase_scale

_DATASETS = os.environ.get("KEIZOKU_SHARED_DATASETS")  # as tests/kzsupport.py finds them
SHARED = (
    Path(_DATASETS) if _DATASETS else Path(__file__).resolve().parents[2] / "shared" / "datasets"
) / "timeseries"

# name: (file, target, spec keys, columns to drop). Decimal-year ``time`` columns are
# dropped: rows are consecutive months from ``start`` (as the datasets README says).
SERIES: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {
    "AirPassengers": ("AirPassengers.csv", "value",
                      {"frequency": "MS", "start": "1949-01-01"}, ["time"]),
    "nottem": ("nottem.csv", "value", {"frequency": "MS", "start": "1920-01-01"}, ["time"]),
    "sunspot.month": ("sunspot.month.csv", "value",
                      {"frequency": "MS", "start": "1749-01-01", "window": 600}, ["time"]),
    "Seatbelts (exogenous)": ("Seatbelts.csv", "DriversKilled",
                              {"frequency": "MS", "start": "1969-01-01",
                               "exogenous": ["PetrolPrice", "law"]}, []),
    "economics unemploy": ("economics.csv", "unemploy", {"time": "date"}, []),
    "economics psavert": ("economics.csv", "psavert", {"time": "date"}, []),
    "Garch dm (daily)": ("Garch.csv", "dm",
                         {"time": "date", "time_format": "%y%m%d", "frequency": "B",
                          "gaps": "fill", "horizon": 10, "window": 500}, ["ddm"]),
}  # fmt: skip


def _mase(actual: np.ndarray, pred: np.ndarray, train: np.ndarray, season: int) -> float:
    return float(np.mean(np.abs(actual - pred)) / mase_scale(train, season))


def run_one(name: str, file: str, target: str, keys: dict[str, Any], drop: list[str]) -> dict:  # type: ignore[type-arg]
    frame = pd.read_csv(SHARED / file).drop(columns=["rownames", *drop])
    keys = dict(keys)
    if "start" in keys:  # consecutive periods: date them once, so a cut keeps the calendar
        stamps = pd.date_range(keys.pop("start"), periods=len(frame), freq=keys["frequency"])
        frame.insert(0, "period", stamps.strftime("%Y-%m-%d"))
        keys["time"] = "period"
    fs = ForecastSpec(**{"horizon": 12, **keys})
    (full,), freq = split_series(frame, fs, target, window=fs.window)
    h = fs.horizon
    season = season_length(freq, fs.season)
    keep_rows = sorted(int(r) - 1 for r in full.rows[: len(full) - h] if r > 0)
    tick = time.monotonic()
    result = fit_forecast(frame.iloc[keep_rows], target, fs.model_copy(update={"window": None}))
    fit_s = time.monotonic() - tick
    train = _cut(full, 0, len(full) - h)
    actual = full.y[len(full) - h :]
    future = full.exog[len(full) - h :]
    point, half = result.model.forecast_series(train, h, future)
    row: dict[str, Any] = {
        "series": name, "periods": len(full), "frequency": freq, "horizon": h,
        "keizoku_pick": result.model.info["family"],
        "keizoku": _mase(actual, point, train.y, season),
        "coverage_test": float(np.mean(np.abs(actual - point) <= half)),
        "coverage_cv": result.coverage, "level": fs.level, "fit_s": fit_s,
    }  # fmt: skip
    for base in ("seasonal_naive", "lightgbm", "ets"):
        model = make(base)
        model.fit([train], season, freq)
        row[base] = _mase(actual, model.forecast(train, h, future), train.y, season)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"bench/forecast.py: {SHARED} is absent; nothing measured.")
        return
    wanted = [s for s in args.only.split(",") if s]
    rows = []
    for name, (file, target, keys, drop) in SERIES.items():
        if wanted and not any(w in name for w in wanted):
            continue
        rows.append(run_one(name, file, target, keys, drop))
        print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()[0]
    print(f"\nMASE on the last horizon of each series (lower is better); load average {load:.1f}\n")
    print(
        "| series | periods | freq | h | keizoku (pick) | seasonal naive | LightGBM lags | "
        "ETS (AIC) | coverage test / CV @level | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['series']} | {r['periods']} | {r['frequency']} | {r['horizon']} | "
            f"{r['keizoku']:.3f} ({r['keizoku_pick']}) | {r['seasonal_naive']:.3f} | "
            f"{r['lightgbm']:.3f} | {r['ets']:.3f} | {r['coverage_test']:.2f} / "
            f"{r['coverage_cv']:.2f} @{r['level']:g} | {r['fit_s']:.0f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"load_average": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
