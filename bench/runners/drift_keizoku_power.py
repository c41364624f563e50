"""keizoku's drift verdicts on many planted cases (the project's venv; keizoku importable).

    python drift_keizoku_power.py MANIFEST.json OUT.json

MANIFEST: {"cases": [{"dir": ..., "features": {name: "numeric"|"categorical"}}, ...]}; each
dir holds reference.parquet and current.parquet. Per case, the reference statistics are what
training would save (``numeric_ref``/``categorical_ref`` on the reference rows, and the bounded
reference row sample); the current rows are counted by the same DuckDB query `keizoku monitor`
runs over Parquet, and the domain classifier sees the same samples. Time per case = reading the
current file + per-feature drift + multivariate check (the reference statistics are computed
at training, so not timed); peak memory = this process's ru_maxrss, and after each
case (``rss_mb``).
"""

import json
import resource
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd

from keizoku.monitoring.drift import DriftConfig, collect_counts
from keizoku.monitoring.monitor import drift_of_counts
from keizoku.monitoring.multivariate import domain_classifier
from keizoku.monitoring.reference import (
    Reference,
    categorical_ref,
    numeric_ref,
    reference_sample,
)

manifest, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
cfg = DriftConfig()
results = []


def save() -> None:
    """Write what is done so far (an interrupted run keeps its finished cases)."""
    out.write_text(json.dumps({
        "status": "ok", "results": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


for case in manifest["cases"]:
    d, kinds = Path(case["dir"]), case["features"]
    ref_frame = pd.read_parquet(d / "reference.parquet")
    feats = {
        f: numeric_ref(ref_frame[f]) if k == "numeric" else categorical_ref(ref_frame[f])
        for f, k in kinds.items()
    }
    ref = Reference(created=0, n_rows=len(ref_frame), task="binary", target="y",
                    metric="roc_auc", greater_is_better=True, cv_score=0.5, features=feats)
    sample = reference_sample(ref_frame, list(kinds))
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    path = str(d / "current.parquet").replace("'", "''")
    source = f"SELECT 0.0 AS bucket, * FROM read_parquet('{path}')"
    columns = {f: '"' + f + '"' for f in kinds}
    counts = collect_counts(con, source, ref, columns, None)
    verdicts = drift_of_counts(counts, feats, cfg)
    t_features = time.perf_counter() - t0
    cols = ", ".join(columns.values())
    cur = con.execute(f"SELECT {cols} FROM ({source}) USING SAMPLE reservoir("
                      f"{cfg.multivariate_rows} ROWS) REPEATABLE (0)").df()
    multi = domain_classifier(sample, cur, kinds, auc_threshold=cfg.auc_threshold,
                              alpha=cfg.alpha)
    results.append({
        "dir": str(d),
        "drifted": sorted(f for f, v in verdicts.items() if v.drifted),
        "effects": {f: round(v.effect, 4) for f, v in verdicts.items()},
        "multivariate": multi.drifted,
        "auc": multi.auc,
        "top": [f for f, _ in multi.top_features[:2]],
        "seconds_features": t_features,
        "seconds": time.perf_counter() - t0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    save()
save()
