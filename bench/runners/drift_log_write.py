"""Write a data file as one day of a model's prediction log (the project's venv; keizoku
importable; KEIZOKU_HOME and KEIZOKU_LOG_ROOT set by the caller).

    python drift_log_write.py MODEL CURRENT.parquet [SEGMENTS]

Scores the rows with the model's champion (as the server would), then writes them with
``write_segment`` as ``SEGMENTS`` (default 24) segments, one per hour of the last day, with
the columns the server logs, and folds each into the hourly/daily pre-aggregates as the
server's log does after each write (``monitoring.buckets.fold_table``; ``--no-fold``: a log
written before buckets existed, which the first ``keizoku monitor`` folds). Not timed: this
is the setup of the log part of bench/drift.py.
"""

import sys
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa

from keizoku.data.labels import canonical
from keizoku.monitoring.buckets import fold_table
from keizoku.monitoring.log import FEATURE_PREFIX, log_dir, write_segment
from keizoku.registry.models import load_model, resolve

fold = "--no-fold" not in sys.argv
args = [a for a in sys.argv[1:] if a != "--no-fold"]
name, path = args[0], args[1]
segments = int(args[2]) if len(args) > 2 else 24
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
t0 = time.perf_counter()
for part in np.array_split(np.arange(n), segments):
    piece = table.slice(int(part[0]), len(part))
    segment = write_segment(folder, piece)
    if fold:
        fold_table(name, piece, segment.name)
how = f", folded in {time.perf_counter() - t0:.1f}s with the writes" if fold else ", not folded"
print(f"logged {n} rows of {name}:{version} as {segments} segments in {folder}{how}")
