"""Self-check (not a test): drift over 1M logged rows x 20 features, end to end from the log.

Run: .venv/bin/python tests/monitoring/selfcheck_drift_1m.py [ROWS] [SEGMENTS]
Writes ROWS rows as SEGMENTS log segments into a temp folder (in a child process, so
the measured process's memory is only the drift), then times reading the segments,
computing every feature's drift and the prediction drift, and reports peak RSS.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_FEATURES = 20


def write(root: Path, rows: int, segments: int) -> None:
    import numpy as np
    import pyarrow as pa

    from keizoku.monitoring.log import FEATURE_PREFIX, log_dir, write_segment

    rng = np.random.default_rng(0)
    per = rows // segments
    for s in range(segments):
        cols: dict[str, pa.Array] = {
            "request_id": pa.array([f"r{s}-{i}" for i in range(per)]),
            "ts": pa.array(time.time() - 3600 * 20 + np.sort(rng.uniform(0, 3600 * 19, per))),
            "model": pa.array(["bench"] * per),
            "version": pa.array(np.ones(per, dtype=np.int64)),
            "variant": pa.array(["champion"] * per),
            "entity_id": pa.nulls(per, pa.string()),
            "shadow": pa.array(np.zeros(per, dtype=bool)),
            "latency_ms": pa.array(rng.uniform(0.5, 3, per)),
            "prediction": pa.array(np.where(rng.uniform(size=per) > 0.5, "1", "0")),
            "score": pa.array(rng.uniform(size=per)),
        }
        for f in range(N_FEATURES):
            if f % 4 == 3:
                levels = np.array(["a", "b", "c", "d", "e"])
                cols[f"{FEATURE_PREFIX}f{f}"] = pa.array(levels[rng.integers(0, 5, per)])
            else:
                shift = 0.5 if f == 0 else 0.0
                cols[f"{FEATURE_PREFIX}f{f}"] = pa.array(rng.normal(shift, 1, per))
        write_segment(log_dir("bench", root), pa.table(cols))


def measure(root: Path) -> dict[str, float]:
    import numpy as np

    from keizoku.monitoring.drift import DriftConfig
    from keizoku.monitoring.monitor import drift_of_source, log_source
    from keizoku.monitoring.reference import Reference, categorical_ref, numeric_ref

    rng = np.random.default_rng(1)
    feats = {}
    for f in range(N_FEATURES):
        if f % 4 == 3:
            feats[f"f{f}"] = categorical_ref(rng.choice(list("abcde"), 50_000))
        else:
            feats[f"f{f}"] = numeric_ref(rng.normal(0, 1, 50_000))
    ref = Reference(
        created=0, n_rows=50_000, task="binary", target="y", classes=["0", "1"], metric="roc_auc",
        greater_is_better=True, cv_score=0.8, features=feats,
        prediction=numeric_ref(rng.uniform(size=50_000)),
    )  # fmt: skip
    import duckdb

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    now = time.time()
    source, columns, pred = log_source(con, "bench", 1, ref, now - 86400, now, root)
    n, drifts, pdrift, _ = drift_of_source(con, source, ref, columns, pred, DriftConfig())
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": n,
        "features": len(drifts),
        "seconds": round(elapsed, 3),
        "rss_before_mb": round(before),
        "rss_peak_mb": round(peak),
        "drifted": [d.feature for d in drifts if d.drifted],  # type: ignore[dict-item]
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        sys.exit(0)
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    segments = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write(Path(tmp), rows, segments)
        print(f"wrote {rows:,} rows in {segments} segments in {time.perf_counter() - t:.1f}s")
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", tmp], capture_output=True, text=True
            )
            print(out.stdout.strip() or out.stderr)
