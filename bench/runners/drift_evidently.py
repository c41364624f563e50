"""Evidently's data drift preset on reference.parquet vs current.parquet (in bench/.venv-evidently).

    python drift_evidently.py DIR OUT.json
Times the report computation (Report([DataDriftPreset()]).run(...) and .dict()) after loading;
peak memory is this process's ru_maxrss, data included.
"""

import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

d, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
ref = pd.read_parquet(d / "reference.parquet")
cur = pd.read_parquet(d / "current.parquet")
features = [c for c in ref.columns if c != "y"]
ref, cur = ref[features], cur[features]
load_s = time.perf_counter() - t0

from evidently import Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

t0 = time.perf_counter()
snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
res = snap.dict()
compute_s = time.perf_counter() - t0
drifted = []
for m in res["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        method, thr = str(cfg.get("method", "")), float(cfg.get("threshold", 0.1))
        val = float(m["value"])
        is_p = "p_value" in method.lower() or "p-value" in method.lower()
        if (val < thr) if is_p else (val >= thr):
            drifted.append(cfg["column"])
import importlib.metadata as md  # noqa: E402

out.write_text(json.dumps({
    "status": "ok", "load_s": load_s, "seconds": compute_s,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "drifted": sorted(drifted), "version": md.version("evidently"),
}))
