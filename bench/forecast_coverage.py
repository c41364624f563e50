"""Choosing the interval method (decision 0017, s7) on series the forecast bench does not report.

    python bench/forecast_coverage.py --errors bench/results/<ts>-forecast-coverage-errors.jsonl
    python bench/forecast_coverage.py --errors <that file> --rescore   # the table only

Generated monthly series only (seeds and shapes bench/forecast.py does not use): trending
ones (bending, straight, damped; additive or growing season) and stationary ones (season and
autocorrelated noise). Per series and forecaster (ETS, LightGBM): the last ``h`` periods are
the test window; on the periods before it, the forecaster is refitted at every ``STRIDE``-th
origin of the last ``3h`` periods and its scaled errors per step kept. Each interval method
calibrates on a subset of those errors (and weights) and is scored by its coverage of the
test window and the width of its interval (in MASE scale units), and by its cross-conformal
coverage on the three non-overlapping CV folds (the number keizoku reports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from keizoku.forecast.models import make  # noqa: E402
from keizoku.forecast.series import Series, split_series  # noqa: E402
from keizoku.forecast.spec import ForecastSpec  # noqa: E402
from keizoku.forecast.train import _cut, conformal, mase_scale, smooth_spread  # noqa: E402

H, SEASON, LEVEL, STRIDE = 12, 12, 0.9, 3


def _monthly(y: np.ndarray) -> Series:
    months = pd.date_range("2000-01-01", periods=len(y), freq="MS").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"month": months, "value": y})
    (s,), _ = split_series(frame, ForecastSpec(time="month"), "value")
    return s


def _series() -> dict[str, tuple[str, np.ndarray]]:
    out: dict[str, tuple[str, np.ndarray]] = {}
    t = np.arange(240)
    season = np.sin(2 * np.pi * t / 12)
    for seed in (21, 22):
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 4, 240)
        out[f"bending {seed}"] = ("trend", 100 + 1.5 * t + 0.004 * t**2 + 12 * season + noise)
        out[f"straight {seed}"] = ("trend", 50 + 2.0 * t + 8 * season + noise)
        damped = 300 * (1 - np.exp(-t / 90))
        out[f"damped {seed}"] = ("trend", 40 + damped + 10 * season + noise)
        out[f"growing season {seed}"] = ("trend", (100 + 1.2 * t) * (1 + 0.1 * season) + noise)
        ar = np.zeros(240)
        for i in range(1, 240):
            ar[i] = 0.6 * ar[i - 1] + rng.normal(0, 4)
        out[f"stationary {seed}"] = ("flat", 200 + 15 * season + ar)
        out[f"noisy flat {seed}"] = ("flat", 80 + 5 * season + rng.normal(0, 6, 240))
    return out


def _errors(name: str, s: Series) -> dict[str, Any]:
    """Scaled errors per origin (oldest first) on the training part, and the test errors."""
    n = len(s) - H
    train = _cut(s, 0, n)
    origins = list(range(n - 3 * H, n - H + 1, STRIDE))
    rows, scales = [], []
    for o in origins:
        model = make(name, 0)
        part = _cut(s, 0, o)
        model.fit([part], SEASON, "MS")
        pred = model.forecast(part, H, s.exog[o : o + H])
        scale = mase_scale(part.y, SEASON)
        rows.append((s.y[o : o + H] - pred) / scale)
        scales.append(scale)
    model = make(name, 0)
    model.fit([train], SEASON, "MS")
    pred = model.forecast(train, H, s.exog[n:])
    test = (s.y[n:] - pred) / mase_scale(train.y, SEASON)
    return {"origins": origins, "errors": np.asarray(rows), "test": test, "n": n}


def _calibrate(errors: np.ndarray, weights: np.ndarray, rule: str) -> tuple[np.ndarray, Any]:
    """(sigma per step, q) from scaled errors[origin, step]; an asymmetric rule gives
    (lower q, upper q) of the signed errors."""
    if rule in ("points", "trajectories"):
        if np.allclose(weights, 1.0):
            return conformal(errors[:, None, :], np.ones((len(errors), 1)), LEVEL, count=rule)
        scaled = np.abs(errors)  # weighted (recent origins count more): the points rule
        sigma = smooth_spread((scaled * weights[:, None]).sum(axis=0) / weights.sum())
        scores, w = (scaled / sigma).ravel(), np.repeat(weights, scaled.shape[1])
        order = np.argsort(scores)
        cum = np.cumsum(w[order]) / (w.sum() + w.mean())
        return sigma, float(scores[order][min(int(np.searchsorted(cum, LEVEL)), len(w) - 1)])
    sigma = smooth_spread(np.abs(errors).mean(axis=0))  # "asymmetric"
    signed = np.sort((errors / sigma).ravel())
    k = math.ceil((len(signed) + 1) * (1 + LEVEL) / 2)
    return sigma, (float(signed[max(len(signed) - k, 0)]), float(signed[min(k, len(signed)) - 1]))


def _inside(errors: np.ndarray, sigma: np.ndarray, q: Any) -> np.ndarray:
    if isinstance(q, tuple):
        return np.asarray((errors >= q[0] * sigma) & (errors <= q[1] * sigma))
    return np.asarray(np.abs(errors) <= q * sigma)


# name: (origins every N periods over the last 3h, weight decay per h of age, rule)
METHODS: dict[str, tuple[int, float, str]] = {
    "3 folds, +1 point (s6)": (H, 1.0, "points"),
    "3 folds, +1 trajectory (s7)": (H, 1.0, "trajectories"),
    "origins every h/4, +1 point": (H // 4, 1.0, "points"),
    "origins every h/2, +1 point": (H // 2, 1.0, "points"),
    "origins every h/4, decay 0.5/h": (H // 4, 0.5, "points"),
    "origins every h/4, +1 trajectory": (H // 4, 1.0, "trajectories"),
    "3 folds, asymmetric": (H, 1.0, "asymmetric"),
}


def _score(run: dict[str, Any], method: tuple[int, float, str]) -> dict[str, float]:
    """Coverage of the test window, cross-conformal coverage on the three CV folds (each
    calibrated on the origins whose windows do not overlap it), mean width (scale units)."""
    every, decay, rule = method
    errors, origins, n = np.asarray(run["errors"]), run["origins"], run["n"]

    def pick(step: int) -> list[int]:
        return [i for i, o in enumerate(origins) if (n - H - o) % step == 0]

    def weights(chosen: list[int]) -> np.ndarray:
        return np.asarray([decay ** ((n - H - origins[i]) / H) for i in chosen])

    chosen = pick(every)
    sigma, q = _calibrate(errors[chosen], weights(chosen), rule)
    width = (q[1] - q[0]) * sigma if isinstance(q, tuple) else 2 * q * sigma
    folds, inside = pick(H), []
    for f in folds:
        rest = [i for i in chosen if abs(origins[i] - origins[f]) >= H]
        s_f, q_f = _calibrate(errors[rest], weights(rest), rule)
        inside.append(_inside(errors[f], s_f, q_f))
    test = _inside(np.asarray(run["test"]), sigma, q)
    return {"test": float(test.mean()), "cv": float(np.mean(inside)), "width": float(width.mean())}


def _table(runs: list[dict[str, Any]]) -> str:
    lines = ["| method | trending: coverage test / CV, width | stationary: coverage test / CV, "
             "width |", "|---|---|---|"]  # fmt: skip
    for name, method in METHODS.items():
        cells = []
        for kind in ("trend", "flat"):
            got = [_score(r, method) for r in runs if r["kind"] == kind]
            mean = {k: np.mean([g[k] for g in got]) for k in ("test", "cv", "width")}
            cells.append(f"{mean['test']:.3f} / {mean['cv']:.3f}, {mean['width']:.2f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    kinds = {k: sum(r["kind"] == k for r in runs) for k in ("trend", "flat")}
    return "\n".join(lines) + f"\n\n{kinds['trend']} trending and {kinds['flat']} stationary runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", type=Path, required=True, help="JSONL of each run's errors")
    parser.add_argument("--rescore", action="store_true", help="score the runs in --errors only")
    args = parser.parse_args()
    if not args.rescore:
        every = _series()
        trend = [k for k, v in every.items() if v[0] == "trend"]
        flat = [k for k, v in every.items() if v[0] == "flat"]
        for label in [k for pair in zip(trend[::2], flat, trend[1::2], strict=False) for k in pair]:
            kind, y = every[label]
            s = _monthly(np.round(y, 2))
            for name in ("ets", "lightgbm"):
                data = _errors(name, s)
                with args.errors.open("a") as fh:
                    fh.write(json.dumps({"series": label, "kind": kind, "model": name,
                                         "origins": data["origins"], "n": data["n"],
                                         "errors": data["errors"].tolist(),
                                         "test": data["test"].tolist()}) + "\n")  # fmt: skip
                print(f"{label} {name}: done (load {os.getloadavg()[0]:.1f})", flush=True)
    runs = [json.loads(line) for line in args.errors.read_text().splitlines() if line]
    print(_table(runs))


if __name__ == "__main__":
    main()
