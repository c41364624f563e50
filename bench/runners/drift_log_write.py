"""Write a data file as one day of a model's prediction log (the project's venv; keizoku
importable; KEIZOKU_HOME and KEIZOKU_LOG_ROOT set by the caller).

    python drift_log_write.py MODEL CURRENT.parquet [SEGMENTS]

Scores the rows with the model's champion (as the server would), then writes them with
``write_segment`` as ``SEGMENTS`` (default 24) segments, one per hour of the last day, with
the columns the server logs. Not timed: this is the setup of the log part of bench/drift.py.
"""

import sys
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa

from keizoku.data.labels import canonical
from keizoku.monitoring.log import FEATURE_PREFIX, log_dir, write_segment
from keizoku.registry.models import load_model, resolve

name, path = sys.argv[1], sys.argv[2]
segments = int(sys.argv[3]) if len(sys.argv) > 3 else 24
_, version = resolve(f"{name}@champion")
model = load_model(f"{name}:{version}")
frame = pd.read_parquet(path)
raw = np.asarray(model.predict_raw(frame))
n = len(frame)
cols = {
    "request_id": pa.array([uuid.uuid4().hex for _ in range(n)]),
    "ts": pa.array(time.time() - 86400 + 60 + np.arange(n) * (86400 - 120) / n),
    "model": pa.array([name] * n),
    "version": pa.array(np.full(n, version, dtype=np.int64)),
    "variant": pa.array(["champion"] * n),
    "entity_id": pa.array([None] * n, pa.string()),
    "shadow": pa.array(np.zeros(n, dtype=bool)),
    "latency_ms": pa.array(np.full(n, 1.0)),
    "prediction": pa.array([canonical(x) for x in model.labels(raw)]),
    "probabilities": pa.array([None] * n, pa.string()),
    "score": pa.array(raw[:, -1] if raw.shape[1] == 2 else raw.max(axis=1)),
    "inputs": pa.array(["{}"] * n),
}
for f in frame.columns:
    values = frame[f]
    if pd.api.types.is_numeric_dtype(values):
        cols[FEATURE_PREFIX + f] = pa.array(values.to_numpy(float), pa.float64())
    else:
        cols[FEATURE_PREFIX + f] = pa.array(values.astype(object).tolist(), pa.string())
table = pa.table(cols)
folder = log_dir(name)
for part in np.array_split(np.arange(n), segments):
    write_segment(folder, table.slice(int(part[0]), len(part)))
print(f"logged {n} rows of {name}:{version} as {segments} segments in {folder}")
