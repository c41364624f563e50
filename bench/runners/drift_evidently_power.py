"""Evidently's DataDriftPreset on many planted cases (in bench/.venv-evidently).

    python drift_evidently_power.py MANIFEST.json OUT.json

Same manifest as drift_keizoku_power.py. Per case: load both files (not timed), then time
``Report([DataDriftPreset()]).run(...)`` + ``.dict()``; a column is drifted by the preset's own
verdict (p-value below, or distance at or above, the method's threshold). Peak memory = this
process's ru_maxrss.
"""

import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

manifest, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
results = []


def save() -> None:
    """Write what is done so far (an interrupted run keeps its finished cases)."""
    out.write_text(json.dumps({
        "status": "ok", "results": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


for case in manifest["cases"]:
    d, kinds = Path(case["dir"]), case["features"]
    ref = pd.read_parquet(d / "reference.parquet")[list(kinds)]
    cur = pd.read_parquet(d / "current.parquet")[list(kinds)]
    for f, k in kinds.items():  # tell Evidently the types keizoku is told
        if k == "categorical":
            ref[f], cur[f] = ref[f].astype(object), cur[f].astype(object)
    t0 = time.perf_counter()
    res = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
    seconds = time.perf_counter() - t0
    drifted, methods = [], {}
    for m in res["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            method, thr = str(cfg.get("method", "")), float(cfg.get("threshold", 0.1))
            val = float(m["value"])
            is_p = "p_value" in method.lower() or "p-value" in method.lower()
            methods[cfg["column"]] = method
            if (val < thr) if is_p else (val >= thr):
                drifted.append(cfg["column"])
    results.append({"dir": str(d), "drifted": sorted(drifted), "methods": methods,
                    "seconds": seconds,
                    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    save()
save()
