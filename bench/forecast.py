"""Forecasting: keizoku's pick vs seasonal naive, LightGBM with lags, ETS and statsforecast's
AutoETS/AutoARIMA, on every series of ../shared/datasets/timeseries/ (skipped, with a note,
when that folder is absent) and on generated series the project does not ship (a trending
monthly one, an hourly load with daily and weekly seasons).

    python bench/forecast.py [--out bench/work/forecast.json] [--only AirPassengers,...]

Per series: the last ``horizon`` periods are the test window, never seen in training.
keizoku (``keizoku.forecast.train.fit_forecast``: time-ordered CV, MASE leaderboard,
conformal intervals) trains on the rest; each baseline (seasonal naive; LightGBM with lags,
recursive; ETS with its form chosen by AIC from statsmodels) is fitted on the same periods,
and so are statsforecast's automatic models, in their own venv (bench/setup_peer.sh
statsforecast; left out with a note when it is absent). MASE = test MAE / in-sample
seasonal-naive MAE of the training periods. Coverage: the share of test actuals inside
keizoku's interval (nominal ``level``) and inside AutoETS's own interval at the same level,
and the cross-conformal CV coverage keizoku reports. Prints a Markdown table; ``--out``
writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.forecast.models import make
from keizoku.forecast.series import season_length, split_series
from keizoku.forecast.spec import ForecastSpec
from keizoku.forecast.train import _cut, conformal, cross_coverage, fit_forecast, mase_scale

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

BENCH = Path(__file__).resolve().parent
PEER = BENCH / ".venv-statsforecast" / "bin" / "python"


def _trending(seed: int = 7) -> pd.DataFrame:
    """20 years of a monthly series with a strong, bending trend, a season and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(240)
    y = 100 + 1.5 * t + 0.004 * t**2 + 12 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 4, 240)
    months = pd.date_range("2000-01-01", periods=240, freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": months, "value": y.round(2)})


def _hourly(seed: int = 11) -> pd.DataFrame:
    """60 days of hourly load: a daily and a weekly season, a slow trend, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(60 * 24)
    daily = 20 * np.sin(2 * np.pi * (t % 24 - 6) / 24)
    weekend = np.where((t // 24) % 7 >= 5, -25.0, 0.0)
    y = 200 + 0.01 * t + daily + weekend + rng.normal(0, 3, len(t))
    hours = pd.date_range("2026-01-05", periods=len(t), freq="h").strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame({"hour": hours, "load": y.round(2)})


# name: (make the frame, target, spec keys): series the project does not ship.
GENERATED: dict[str, tuple[Callable[[], pd.DataFrame], str, dict[str, Any]]] = {
    "trending monthly (generated)": (_trending, "value", {"time": "month"}),
    "hourly load (generated)": (_hourly, "load", {"time": "hour", "horizon": 48}),
}


def _mase(actual: np.ndarray, pred: np.ndarray, train: np.ndarray, season: int) -> float:
    return float(np.mean(np.abs(actual - pred)) / mase_scale(train, season))


def _read(file: str, keys: dict[str, Any], drop: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    frame = pd.read_csv(SHARED / file).drop(columns=["rownames", *drop])
    keys = dict(keys)
    if "start" in keys:  # consecutive periods: date them once, so a cut keeps the calendar
        stamps = pd.date_range(keys.pop("start"), periods=len(frame), freq=keys["frequency"])
        frame.insert(0, "period", stamps.strftime("%Y-%m-%d"))
        keys["time"] = "period"
    return frame, keys


def run_one(name: str, frame: pd.DataFrame, target: str, keys: dict[str, Any]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """(the row of results, the statsforecast job) of one series."""
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
    scale = mase_scale(train.y, season)
    assert result.errors is not None and result.scales is not None
    sigma, q = conformal(result.errors, result.scales, fs.level, count="points")
    half_s6 = q * sigma[:h] * scale  # the s6 rule on the same CV errors: before/after
    row: dict[str, Any] = {
        "series": name, "periods": len(full), "frequency": freq, "horizon": h,
        "keizoku_pick": result.model.info["family"],
        "keizoku": _mase(actual, point, train.y, season),
        "coverage_test": float(np.mean(np.abs(actual - point) <= half)),
        "coverage_cv": result.coverage, "level": fs.level, "fit_s": fit_s,
        "width": float(np.mean(2 * half) / scale),
        "coverage_test_s6": float(np.mean(np.abs(actual - point) <= half_s6)),
        "coverage_cv_s6": cross_coverage(result.errors, result.scales, fs.level, count="points"),
        "width_s6": float(np.mean(2 * half_s6) / scale),
        "actual": actual.tolist(), "scale": mase_scale(train.y, season),
    }  # fmt: skip
    for base in ("seasonal_naive", "lightgbm", "ets"):
        model = make(base)
        model.fit([train], season, freq)
        row[base] = _mase(actual, model.forecast(train, h, future), train.y, season)
    job = {"name": name, "y": train.y.tolist(), "freq": freq, "season": season, "h": h,
           "level": fs.level}  # fmt: skip
    return row, job


def with_statsforecast(rows: list[dict], jobs: list[dict]) -> str:  # type: ignore[type-arg]
    """Add AutoETS/AutoARIMA MASE (and AutoETS's coverage) to ``rows``; a note on failure."""
    if not PEER.exists():
        return (
            "statsforecast: bench/.venv-statsforecast is absent (bench/setup_peer.sh statsforecast)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        jobs_file, out_file = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_file.write_text(json.dumps(jobs))
        runner = BENCH / "runners" / "forecast_statsforecast.py"
        done = subprocess.run([str(PEER), str(runner), str(jobs_file), str(out_file)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            return f"statsforecast failed: {done.stderr.strip()[-300:]}"
        results = json.loads(out_file.read_text())
    for row in rows:
        actual, scale = np.asarray(row["actual"]), row["scale"]
        for model, got in results.get(row["series"], {}).items():
            if "error" in got:
                row[model], row[f"{model}_error"] = float("nan"), got["error"]
                continue
            mean = np.asarray(got["mean"])
            row[model] = float(np.mean(np.abs(actual - mean)) / scale)
            row[f"{model}_fit_s"] = got["fit_s"]
            lo, hi = np.asarray(got["lo"]), np.asarray(got["hi"])
            row[f"{model}_coverage"] = float(np.mean((lo <= actual) & (actual <= hi)))
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", default="")
    parser.add_argument("--no-peer", action="store_true", help="leave statsforecast out")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    sources: dict[str, Any] = {name: lambda f=file, k=keys, d=drop, t=target: (*_read(f, k, d), t)
               for name, (file, target, keys, drop) in SERIES.items()}  # fmt: skip
    if not SHARED.is_dir():
        print(f"bench/forecast.py: {SHARED} is absent; the generated series only.")
        sources = {}
    for name, (make_frame, target, keys) in GENERATED.items():
        sources[name] = lambda m=make_frame, k=keys, t=target: (m(), k, t)
    rows, jobs = [], []
    for name, source in sources.items():
        if wanted and not any(w in name for w in wanted):
            continue
        frame, keys, target = source()
        row, job = run_one(name, frame, target, keys)
        rows.append(row)
        jobs.append(job)
        print(json.dumps({k: v for k, v in row.items() if k != "actual"}), flush=True)
    note = "statsforecast: left out (--no-peer)" if args.no_peer else with_statsforecast(rows, jobs)
    load = os.getloadavg()[0]
    print(f"\nMASE on the last horizon of each series (lower is better); load average {load:.1f}\n")
    print(
        "| series | periods | freq | h | keizoku (pick) | seasonal naive | LightGBM lags | "
        "ETS (AIC) | AutoETS | AutoARIMA | coverage test keizoku / AutoETS, CV @level | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer = f"{r.get('AutoETS_coverage', float('nan')):.2f}"
        print(
            f"| {r['series']} | {r['periods']} | {r['frequency']} | {r['horizon']} | "
            f"{r['keizoku']:.3f} ({r['keizoku_pick']}) | {r['seasonal_naive']:.3f} | "
            f"{r['lightgbm']:.3f} | {r['ets']:.3f} | {r.get('AutoETS', float('nan')):.3f} | "
            f"{r.get('AutoARIMA', float('nan')):.3f} | {r['coverage_test']:.2f} / {peer}, "
            f"{r['coverage_cv']:.2f} @{r['level']:g} | {r['fit_s']:.0f} |"
        )
    print(
        "\nInterval coverage at the nominal level and mean width (in MASE scale units), the s6 "
        "rule (+1 point) → the s7 rule (+1 trajectory), same CV errors\n\n"
        "| series | coverage test | coverage CV | width |\n|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['series']} | {r['coverage_test_s6']:.2f} → {r['coverage_test']:.2f} | "
            f"{r['coverage_cv_s6']:.2f} → {r['coverage_cv']:.2f} | "
            f"{r['width_s6']:.2f} → {r['width']:.2f} |"
        )
    before, after = np.mean([r["width_s6"] for r in rows]), np.mean([r["width"] for r in rows])
    print(f"| mean | | | {before:.2f} → {after:.2f} |")
    if note:
        print(f"\n{note}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"load_average": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
