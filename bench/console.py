"""Console page timings with a year of hourly buckets and 1M logged predictions.

    python bench/console.py [--rows 1000000] [--days 365] [--repeat 15] [--out FILE.json]

1. trains the penguins model (``keizoku init`` + ``train --max-trials 2``) in a temporary
   ``KEIZOKU_HOME``;
2. writes ``--rows`` logged predictions of version 1 spread evenly over ``--days`` days, one
   Parquet segment per day, each written and folded as ``PredictionLog.flush`` does
   (``log.write_segment`` then ``monitoring.buckets.fold_table``); the fold time is measured;
   each day also gets labels for ``--labelled`` of its rows (a feedback segment, folded by
   ``buckets.fold_feedback`` as the page's ``catch_up`` does) and 24 hours of request
   counts (``buckets.add_requests``, as each server process adds them);
3. times each console page in process (Starlette ``TestClient`` on the ``keizoku serve``
   app, loopback without keys), ``--repeat`` times after one warm-up: median and max wall
   time, and the median CPU time of the process (what the page costs on an idle machine;
   on a loaded one the wall time waits for a core).

Prints a JSON document (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
MODEL = "peng"


def _keizoku(*args: str, cwd: Path) -> None:
    exe = str(Path(sys.executable).with_name("keizoku"))
    out = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"keizoku {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")


def _train(root: Path) -> None:
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", root / "penguins.csv")
    _keizoku("init", "penguins.csv", "--target", "species", "--name", MODEL, cwd=root)
    _keizoku("train", "--budget", "60s", "--family", "lightgbm", "--max-trials", "2", cwd=root)


def _segment(rows: pd.DataFrame, ts: np.ndarray, types: dict[str, pa.DataType]) -> pa.Table:
    n = len(ts)
    cols: dict[str, Any] = {
        "request_id": pa.array([f"r{int(t * 1000)}-{i}" for i, t in enumerate(ts)]),
        "ts": pa.array(ts, pa.float64()),
        "model": pa.array([MODEL] * n),
        "version": pa.array(np.ones(n, dtype=np.int64)),
        "variant": pa.array(["champion"] * n),
        "entity_id": pa.array([None] * n, pa.string()),
        "shadow": pa.array(np.zeros(n, dtype=bool)),
        "latency_ms": pa.array(np.random.default_rng(n).gamma(2.0, 1.5, n)),
        "prediction": pa.array(rows["species"].astype(str).tolist()),
        "probabilities": pa.array([None] * n, pa.string()),
        "score": pa.array(np.random.default_rng(n + 1).uniform(0.5, 1.0, n)),
        "inputs": pa.array(["{}"] * n),
    }
    for name, typ in types.items():
        values = rows[name]
        if pa.types.is_floating(typ):
            cols[f"f__{name}"] = pa.array(values.astype(float).tolist(), pa.float64())
        else:
            cols[f"f__{name}"] = pa.array([None if pd.isna(v) else str(v) for v in values])
    return pa.table(cols)


def _labels(table: pa.Table, share: float, rng: np.random.Generator) -> pa.Table:
    """Feedback for a random ``share`` of a segment's rows, a twentieth of them wrong."""
    pick = rng.random(table.num_rows) < share
    ids = table.column("request_id").to_numpy(zero_copy_only=False)[pick]
    said = table.column("prediction").to_numpy(zero_copy_only=False)[pick]
    wrong = rng.random(len(ids)) < 0.05
    label = np.where(wrong, "Gentoo", said)
    ts = table.column("ts").to_numpy(zero_copy_only=False)[pick] + 3600
    return pa.table({
        "request_id": pa.array(ids, pa.string()), "entity_id": pa.array([None] * len(ids),
        pa.string()), "label": pa.array(label, pa.string()),
        "label_num": pa.array([None] * len(ids), pa.float64()),
        "ts": pa.array(ts, pa.float64()), "received_ts": pa.array(ts, pa.float64()),
    })  # fmt: skip


def _requests(day_start: float, per_day: int, rng: np.random.Generator) -> dict[float, Any]:
    """A day of request counts per hour as a server process adds them."""
    from keizoku.serving.metrics import BUCKETS

    hours: dict[float, Any] = {}
    for h in range(24):
        n = max(1, per_day // 24)
        hist = np.bincount(np.searchsorted(BUCKETS, rng.gamma(2.0, 0.002, n)),
                           minlength=len(BUCKETS) + 1)  # fmt: skip
        hours[day_start + h * 3600] = (n, int(rng.binomial(n, 0.01)), hist.tolist())
    return hours


def _log(home: Path, rows_total: int, days: int, labelled: float) -> dict[str, float]:
    from keizoku.monitoring import buckets
    from keizoku.monitoring.feedback import FEEDBACK_KIND
    from keizoku.monitoring.log import log_dir, write_segment
    from keizoku.monitoring.reference import load_reference

    ref = load_reference(f"{MODEL}:1")
    types = {
        f: pa.float64() if r.kind == "numeric" else pa.string() for f, r in ref.features.items()
    }
    data = pd.read_csv(REPO / "examples" / "data" / "penguins.csv")
    rng = np.random.default_rng(0)
    start = (time.time() // 86400 - days) * 86400
    per_day = rows_total // days
    write_s = fold_s = label_s = 0.0
    for day in range(days):
        picks = data.iloc[rng.integers(0, len(data), per_day)].reset_index(drop=True)
        if day >= days - 30:  # the last month drifts on one feature
            picks["bill_length_mm"] = picks["bill_length_mm"] + 10
        ts = start + day * 86400 + np.sort(rng.uniform(0, 86400, per_day))
        table = _segment(picks, ts, types)
        t0 = time.perf_counter()
        path = write_segment(log_dir(MODEL, home), table)
        t1 = time.perf_counter()
        buckets.fold_table(MODEL, table, path.name, home)
        t2 = time.perf_counter()
        write_s, fold_s = write_s + t1 - t0, fold_s + t2 - t1
        feedback = write_segment(log_dir(MODEL, home, FEEDBACK_KIND), _labels(table, labelled,
                                 rng), prefix="fb")  # fmt: skip
        t3 = time.perf_counter()
        buckets.fold_feedback(MODEL, feedback, home)
        label_s += time.perf_counter() - t3
        buckets.add_requests(MODEL, _requests(start + day * 86400, per_day, rng), home)
    return {"rows": per_day * days, "segments": days, "write_s": write_s, "fold_s": fold_s,
            "fold_ms_per_segment": fold_s / days * 1000, "labelled_share": labelled,
            "label_fold_s": label_s,
            "label_fold_ms_per_segment": label_s / days * 1000}  # fmt: skip


def _pages(repeat: int) -> dict[str, dict[str, float]]:
    from starlette.testclient import TestClient

    from keizoku.serving.app import ServeOptions, create_app

    options = ServeOptions(models=[MODEL], poll_interval_s=0, prediction_log=False)
    pages = {
        "models": "/console/models",
        "version": f"/console/models/{MODEL}/1",
        "monitoring (hourly, 7 days)": f"/console/monitoring?model={MODEL}&width=hour",
        "monitoring (daily, 1 year)": f"/console/monitoring?model={MODEL}&width=day",
        "experiments": "/console/experiments",
        "audit": "/console/audit",
    }
    out: dict[str, dict[str, float]] = {}
    with TestClient(create_app(options)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.1)
        for label, path in pages.items():
            r = client.get(path)  # warm-up
            if r.status_code != 200:
                raise SystemExit(f"{path} answered {r.status_code}: {r.text[:500]}")
            times, cpu = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            out[label] = {
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "cpu_median_ms": statistics.median(cpu),
                "bytes": len(r.content),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--labelled", type=float, default=0.1, help="share of rows labelled")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="keizoku-bench-console-"))
    os.environ["KEIZOKU_HOME"] = str(root / ".keizoku")
    try:
        _train(root)
        log = _log(root / ".keizoku", args.rows, args.days, args.labelled)
        result = {"log": log, "pages": _pages(args.repeat),
                  "load_average": os.getloadavg(), "cpus": os.cpu_count()}  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
