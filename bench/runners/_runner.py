"""What every tool runner shares (runs inside the peer's own venv: stdlib, numpy, pandas only).

Contract: ``python run_<tool>.py --split DIR --out DIR --budget SECONDS [--preset NAME]``
(keizoku also takes ``--add-family NAME``).
DIR holds train.parquet, test.parquet and task.json (written by bench/common.py:make_split).
The runner writes OUT/preds.parquet (``prediction`` and, for classifiers, ``proba_<class>``
for every class in task.json) and OUT/result.json (timings, model size, versions, notes).
The harness computes every metric itself from preds.parquet, identically for all tools.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

N_LATENCY = 200
N_WARMUP = 5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--split", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--budget", required=True, type=float)
    p.add_argument("--preset", default="")
    p.add_argument("--add-family", default="",
                   help="keizoku: search the default preset's families plus this one")
    return p.parse_args()


def load(split: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    task = json.loads((split / "task.json").read_text())
    train = pd.read_parquet(split / "train.parquet")
    test = pd.read_parquet(split / "test.parquet")
    return task, train, test


def single_row_latency(predict_one: Callable[[Any], Any], rows: list[Any]) -> dict[str, float]:
    """Median / p90 / p99 of N_LATENCY one-row calls (ms), after N_WARMUP warm-up calls."""
    for i in range(N_WARMUP):
        predict_one(rows[i % len(rows)])
    times = []
    for i in range(N_LATENCY):
        row = rows[i % len(rows)]
        t0 = time.perf_counter()
        predict_one(row)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "latency_ms_p50": statistics.median(times),
        "latency_ms_p90": times[int(0.9 * len(times)) - 1],
        "latency_ms_p99": times[int(0.99 * len(times)) - 1],
        "latency_n": len(times),
    }


def one_row_frames(test: pd.DataFrame, target: str) -> list[pd.DataFrame]:
    x = test.drop(columns=[target])
    return [x.iloc[[i]] for i in range(min(len(x), N_LATENCY))]


def proba_frame(proba: np.ndarray, model_classes: list[Any], classes: list[str]) -> pd.DataFrame:
    """proba columns named after the harness's class strings (matched by str())."""
    df = pd.DataFrame(index=range(proba.shape[0]))
    lookup = {str(c): j for j, c in enumerate(model_classes)}
    for cls in classes:
        j = lookup.get(cls)
        if j is None and cls.endswith(".0"):
            j = lookup.get(cls[:-2])
        df[f"proba_{cls}"] = proba[:, j] if j is not None else 0.0
    return df


def dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def versions(*names: str) -> dict[str, str]:
    import importlib.metadata as m

    out = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = m.version(n)
        except m.PackageNotFoundError:
            pass
    return out


def main(run: Callable[[argparse.Namespace, dict, pd.DataFrame, pd.DataFrame], dict]) -> None:
    """Run ``run`` and always leave a result.json behind, even on failure."""
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"status": "error"}
    try:
        task, train, test = load(args.split)
        result = run(args, task, train, test)
        result.setdefault("status", "ok")
    except Exception as exc:  # noqa: BLE001 - reported in the table, never a crash
        result = {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": traceback.format_exc()[-4000:],
        }
        traceback.print_exc()
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    sys.stdout.flush()
    os._exit(0 if result.get("status") == "ok" else 1)  # skip slow interpreter teardown
