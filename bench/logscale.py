"""The prediction log at scale: `keizoku monitor` over 1 s-flush segments vs the compacted log.

    python bench/logscale.py [--rows 10000000] [--segments 86400] [--target-rows 1000000]
        [--work bench/work/logscale] [--out bench/results/<ts>-logscale.json]

1. trains a small model (penguins, one LightGBM trial) in ``<work>/project`` so that
   ``monitor`` has reference statistics to compare with;
2. writes ``--rows`` logged predictions of that model as ``--segments`` segments with
   ``keizoku.monitoring.log.write_segment`` (86,400 = one day of 1 s flushes; rows drawn
   from penguins.csv, timestamps spread over one day; the columns the server writes);
3. times ``keizoku.monitoring.monitor.monitor`` (drift of every feature, the prediction,
   the confidence-based estimate: what ``keizoku monitor`` computes) over those segments,
   twice (the second with the files in the page cache);
4. compacts them (``compact_folder``, ``--target-rows`` rows per file; the bucket
   pre-aggregates are not built here, so folded segments are not required) and times
   the compaction, then ``monitor`` over the compacted log, twice.

Writes the JSON result (``--out``) and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MODEL = "peng"
DAY = 86_400.0


def _keizoku() -> str:
    return str(Path(sys.executable).with_name("keizoku"))


def _train(project: Path) -> None:
    home = project / ".keizoku"
    if (home / "mlflow.db").exists():
        return
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "data" / "penguins.csv", project / "penguins.csv")
    env = {**os.environ, "KEIZOKU_HOME": str(home)}
    init = ["init", "penguins.csv", "--target", "species", "--name", MODEL]
    train = ["train", "--budget", "60s", "--family", "lightgbm", "--max-trials", "1"]
    for args in (init, train):
        run = [_keizoku(), *args]
        subprocess.run(run, cwd=project, env=env, check=True, capture_output=True)


def _block(rows: int, seed: int = 0) -> pa.Table:
    """``rows`` logged predictions (every column but request_id and ts), drawn from
    penguins.csv with replacement."""
    from keizoku.monitoring.log import FEATURE_PREFIX

    data = pd.read_csv(ROOT / "examples" / "data" / "penguins.csv")
    features = data.drop(columns="species")
    rng = np.random.default_rng(seed)
    part = features.iloc[rng.integers(0, len(features), rows)]
    cols: dict[str, Any] = {
        "model": pa.array([MODEL] * rows),
        "version": pa.array(np.ones(rows, dtype=np.int64)),
        "variant": pa.array(["champion"] * rows),
        "entity_id": pa.array([None] * rows, pa.string()),
        "shadow": pa.array(np.zeros(rows, dtype=bool)),
        "latency_ms": pa.array(rng.uniform(0.5, 3.0, rows)),
        "prediction": pa.array(
            np.array(["Adelie", "Chinstrap", "Gentoo"])[rng.integers(0, 3, rows)]
        ),  # fmt: skip
        "probabilities": pa.array([None] * rows, pa.string()),
        "score": pa.array(rng.uniform(0.34, 1.0, rows)),
        "inputs": pa.array(["{}"] * rows),
    }
    for name in features.columns:
        values = part[name]
        if pd.api.types.is_numeric_dtype(values):
            cols[FEATURE_PREFIX + name] = pa.array(values.to_numpy(float), pa.float64())
        else:
            text = values.astype(object).where(values.notna(), None).tolist()
            cols[FEATURE_PREFIX + name] = pa.array(text, pa.string())
    return pa.table(cols)


def _segments(folder: Path, rows: int, segments: int) -> None:
    """``rows`` predictions in ``segments`` files, each written with ``write_segment``
    (temporary name, fsync, rename) as the server writes them; timestamps over one day."""
    from keizoku.monitoring.log import write_segment

    block = _block(min(rows, 1_000_000))
    start = time.time() - DAY - 3600
    per, extra = divmod(rows, segments)
    done = 0
    for s in range(segments):
        n = per + (1 if s < extra else 0)
        part = block.slice((s * 7919) % (block.num_rows - n + 1), n)
        ts = start + (done + np.arange(n)) * (DAY / rows)
        ids = pa.array([f"r{done + i}" for i in range(n)])
        table = part.add_column(0, "request_id", ids).add_column(1, "ts", pa.array(ts))
        write_segment(folder, table)
        done += n


def _monitor(times: int = 2) -> list[float]:
    from keizoku.monitoring.monitor import monitor

    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        report = monitor(MODEL, version=1)
        out.append(time.perf_counter() - t0)
        print(f"  monitor: {report.n_rows} rows in {out[-1]:.1f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--segments", type=int, default=86_400)
    p.add_argument("--target-rows", type=int, default=1_000_000)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "logscale")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / f"{stamp}-logscale.json"
    )
    args = p.parse_args()

    project = args.work / "project"
    _train(project)
    os.environ["KEIZOKU_HOME"] = str(project / ".keizoku")
    log_root = args.work / f"log-{args.rows}-{args.segments}"
    shutil.rmtree(log_root, ignore_errors=True)
    os.environ["KEIZOKU_LOG_ROOT"] = str(log_root)
    from keizoku.monitoring.compact import compact_folder
    from keizoku.monitoring.log import live_files, log_dir

    folder = log_dir(MODEL)
    t0 = time.perf_counter()
    _segments(folder, args.rows, args.segments)
    write_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(f"wrote {args.rows} rows in {args.segments} segments ({size / 1e6:.0f} MB) "
          f"in {write_s:.0f} s", flush=True)  # fmt: skip
    load = os.getloadavg()[0]
    segmented = _monitor()
    t0 = time.perf_counter()
    result = compact_folder(folder, older_than_s=0, target_rows=args.target_rows, grace_s=0)
    compact_s = time.perf_counter() - t0
    files = len(live_files(folder))
    csize = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(f"compacted into {files} files ({csize / 1e6:.0f} MB) in {compact_s:.0f} s", flush=True)
    compacted = _monitor()
    load = max(load, os.getloadavg()[0])
    out = {
        "rows": args.rows, "segments": args.segments, "target_rows": args.target_rows,
        "segment_bytes": size, "compacted_files": files, "compacted_bytes": csize,
        "write_s": write_s, "compact_s": compact_s, "replaced": result.replaced,
        "monitor_segments_s": segmented, "monitor_compacted_s": compacted,
        "load_average_max": load, "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print(
        f"| {args.rows:,} rows | {args.segments:,} segments: {segmented[0]:.1f} s "
        f"(warm {segmented[1]:.1f} s) | {files} compacted files: {compacted[0]:.1f} s "
        f"(warm {compacted[1]:.1f} s) | compaction {compact_s:.0f} s |"
    )


if __name__ == "__main__":
    main()
