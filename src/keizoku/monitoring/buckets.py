"""Drift and traffic pre-aggregated per hour and per day, folded in as the log is written.

A page that draws a year of drift must not scan a million logged predictions. So each
prediction-log segment is *folded* once, when the log writes it (``PredictionLog.flush``
hands it to :func:`submit`, which folds it in a background thread so the log's own writes
never wait), or later by :func:`catch_up` (segments written by another process, lost from
the queue, or written before this module existed): per model version, per hour and day,

* per feature, the counts drift needs (``keizoku.monitoring.drift.collect_counts``, the
  same DuckDB query ``keizoku monitor`` runs) added to what the bucket held, and the
  bucket's verdict recomputed from the merged counts (``compare_numeric`` /
  ``compare_categorical`` with the default ``DriftConfig``): distance, threshold, drifted;
* the number of served rows and a latency histogram (``LATENCY_MS`` bin edges).

Reads (:func:`drift_series`, :func:`traffic_series`) are one indexed SELECT each.

Storage: ``<home>/buckets/<model>/buckets.sqlite``. A fold is one SQLite transaction that
also records the segment's file name, so a segment is counted once even when the log's
flusher and a page's ``catch_up`` race for it. Shadow predictions are not counted. A
version without reference statistics (or a log with no registry) gets traffic only.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sqlite3
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from keizoku.errors import KeizokuError
from keizoku.monitoring.log import COMPACTED, FEATURE_PREFIX, live_files, log_dir

if TYPE_CHECKING:  # imported where used: the log's flusher imports this module cheaply
    from keizoku.monitoring.drift import BucketCounts, DriftConfig, NumericCounts
    from keizoku.monitoring.reference import FeatureRef, Reference

__all__ = [
    "DAY",
    "HOUR",
    "LATENCY_MS",
    "PREDICTION",
    "DriftPoint",
    "TrafficPoint",
    "catch_up",
    "drift_series",
    "fold_table",
    "folded_segments",
    "submit",
    "traffic_series",
    "wait_folded",
]

HOUR, DAY = 3600, 86400
WIDTHS = (HOUR, DAY)
LATENCY_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
PREDICTION = "__prediction__"
_NULL = "\x00null"
_log = logging.getLogger("keizoku.monitoring")  # a null level in the JSON of categorical counts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folded (segment TEXT PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    width INTEGER, bucket REAL, version INTEGER, feature TEXT,
    counts TEXT NOT NULL, n INTEGER NOT NULL, distance REAL,
    threshold REAL NOT NULL, drifted INTEGER NOT NULL,
    PRIMARY KEY (width, version, feature, bucket)
);
CREATE TABLE IF NOT EXISTS traffic (
    width INTEGER, bucket REAL, version INTEGER, n INTEGER NOT NULL, latency TEXT NOT NULL,
    PRIMARY KEY (width, bucket, version)
);
"""


@dataclass(frozen=True)
class DriftPoint:
    """One feature's drift in one bucket."""

    bucket: float
    n: int
    distance: float | None  # None: not measurable (e.g. a feature the reference saw constant)
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class TrafficPoint:
    """Served rows and latency percentiles (upper bin edges, ms) in one bucket."""

    bucket: float
    n: int
    p50_ms: float
    p95_ms: float


def _db(model: str, root: Path | None) -> Path:
    return log_dir(model, root, "buckets") / "buckets.sqlite"


def _connect(model: str, root: Path | None) -> sqlite3.Connection:
    path = _db(model, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.executescript(_SCHEMA)
    return conn


# ---------------------------------------------------------------------------- reference

_REFS: dict[tuple[str, str, int], Reference | None] = {}


def _reference(model: str, version: int) -> Reference | None:
    """The version's reference statistics, cached; None without a registry or a reference."""
    from keizoku.home import home, mlflow_uri
    from keizoku.registry.backend import sqlite_path

    key = (str(home()), model, version)
    if key in _REFS:
        return _REFS[key]
    db = sqlite_path(mlflow_uri())
    ref: Reference | None = None
    if db is None or db.is_file():  # never create a store from the log's flusher
        from keizoku.monitoring.reference import load_reference

        try:
            ref = load_reference(f"{model}:{version}")
        except KeizokuError:
            ref = None
    if ref is not None:  # an absent one may be registered later
        _REFS[key] = ref
    return ref


def _features(ref: Reference) -> dict[str, FeatureRef]:
    feats = dict(ref.features)
    if ref.prediction is not None:
        feats[PREDICTION] = ref.prediction
    return feats


# ---------------------------------------------------------------------------- counts JSON


def _dump(ref: FeatureRef, numeric: NumericCounts | None, levels: dict[str | None, int]) -> str:
    if ref.kind == "numeric" and numeric is not None:
        return json.dumps({"n": numeric.n, "nulls": numeric.nulls, "le": numeric.le.tolist(),
                           "below": numeric.below, "above": numeric.above})  # fmt: skip
    return json.dumps({(_NULL if k is None else k): v for k, v in levels.items()})


def _load_numeric(text: str) -> NumericCounts:
    from keizoku.monitoring.drift import NumericCounts

    d = json.loads(text)
    return NumericCounts(d["n"], d["nulls"], np.asarray(d["le"], float), d["below"], d["above"])


def _load_levels(text: str) -> dict[str | None, int]:
    return {(None if k == _NULL else k): int(v) for k, v in json.loads(text).items()}


def _add_levels(a: dict[str | None, int], b: dict[str | None, int]) -> dict[str | None, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _add_numeric(a: NumericCounts, b: NumericCounts) -> NumericCounts:
    from keizoku.monitoring.drift import NumericCounts

    known = None not in (a.below, a.above, b.below, b.above)
    return NumericCounts(
        a.n + b.n, a.nulls + b.nulls, a.le + b.le,
        (a.below or 0.0) + (b.below or 0.0) if known else None,
        (a.above or 0.0) + (b.above or 0.0) if known else None,
    )  # fmt: skip


# ------------------------------------------------------------------------------- folding


def _fold_drift(
    conn: sqlite3.Connection, con: Any, model: str, version: int, width: int, columns: set[str]
) -> None:
    from keizoku.monitoring.drift import DriftConfig, collect_counts

    ref = _reference(model, version)
    if ref is None:
        return
    cols = {f: f'"{FEATURE_PREFIX}{f}"' for f in ref.features if FEATURE_PREFIX + f in columns}
    kind = ref.prediction.kind if ref.prediction else "numeric"
    source = (f"SELECT floor(ts / {width}) * {width} AS bucket, * FROM seg "
              f"WHERE version = {int(version)} AND NOT shadow")  # fmt: skip
    counts = collect_counts(con, source, ref, cols, "score" if kind == "numeric" else "prediction")
    cfg = DriftConfig()
    for name, fref in _features(ref).items():
        for bucket in counts.buckets:
            _merge_feature(conn, (width, bucket, version, name), fref, counts, cfg)


def _merge_feature(
    conn: sqlite3.Connection,
    key: tuple[int, float, int, str],
    ref: FeatureRef,
    counts: BucketCounts,
    cfg: DriftConfig,
) -> None:
    from keizoku.monitoring.drift import FeatureDrift, compare_categorical, compare_numeric

    width, bucket, version, name = key
    row = conn.execute(
        "SELECT counts FROM drift WHERE width=? AND bucket=? AND version=? AND feature=?", key
    ).fetchone()
    fd: FeatureDrift
    if ref.kind == "numeric":
        num = counts.numeric[name][bucket]
        if row is not None:
            num = _add_numeric(_load_numeric(row[0]), num)
        fd, text = compare_numeric(name, ref, num, cfg), _dump(ref, num, {})
    else:
        levels = counts.categorical[name][bucket]
        if row is not None:
            levels = _add_levels(_load_levels(row[0]), levels)
        fd, text = compare_categorical(name, ref, levels, cfg), _dump(ref, None, levels)
    distance = float(fd.distance) if math.isfinite(fd.distance) else None  # NaN: not measured
    conn.execute(
        "INSERT OR REPLACE INTO drift VALUES (?,?,?,?,?,?,?,?,?)",
        (*key, text, fd.n, distance, float(fd.threshold), int(fd.drifted)),
    )


def _fold_traffic(conn: sqlite3.Connection, table: pa.Table) -> None:
    ts = table.column("ts").to_numpy(zero_copy_only=False)
    version = table.column("version").to_numpy(zero_copy_only=False)
    served = ~table.column("shadow").to_numpy(zero_copy_only=False).astype(bool)
    latency = table.column("latency_ms").to_numpy(zero_copy_only=False)
    bins = np.searchsorted(LATENCY_MS, latency, side="left")
    for width in WIDTHS:
        bucket = np.floor(ts / width) * width
        keys = np.stack([bucket[served], version[served].astype(float)], axis=1)
        for b, v in np.unique(keys, axis=0):
            pick = served & (bucket == b) & (version == v)
            hist = np.bincount(bins[pick], minlength=len(LATENCY_MS) + 1)
            key = (width, float(b), int(v))
            row = conn.execute(
                "SELECT n, latency FROM traffic WHERE width=? AND bucket=? AND version=?", key
            ).fetchone()
            n = int(pick.sum())
            if row is not None:
                n += int(row[0])
                hist = hist + np.asarray(json.loads(row[1]), dtype=np.int64)
            conn.execute("INSERT OR REPLACE INTO traffic VALUES (?,?,?,?,?)",
                         (*key, n, json.dumps(hist.tolist())))  # fmt: skip


def fold_table(model: str, table: pa.Table, segment: str, root: Path | None = None) -> bool:
    """Add one segment's rows to ``model``'s buckets; False when it was folded already."""
    import duckdb

    conn = _connect(model, root)
    con = duckdb.connect()
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM folded WHERE segment=?", (segment,)).fetchone():
                conn.execute("ROLLBACK")
                return False
            con.register("seg", table)
            columns = set(table.column_names)
            versions = {int(v) for v in table.column("version").to_pylist() if v is not None}
            for version in sorted(versions):
                for width in WIDTHS:
                    _fold_drift(conn, con, model, version, width, columns)
            _fold_traffic(conn, table)
            conn.execute("INSERT INTO folded VALUES (?, ?)", (segment, table.num_rows))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        con.close()
        conn.close()
    return True


# ------------------------------------------------------------- folding off the log's path

_queue: queue.Queue[tuple[str, pa.Table, str, Path | None]] = queue.Queue(maxsize=64)
_worker: threading.Thread | None = None
_start = threading.Lock()


def _drain() -> None:
    while True:
        model, table, segment, root = _queue.get()
        try:
            fold_table(model, table, segment, root)
        except Exception as exc:  # noqa: BLE001 - the next catch_up folds the segment again
            _log.error("Could not pre-aggregate segment %s of '%s': %s", segment, model, exc)
        finally:
            _queue.task_done()


def submit(model: str, table: pa.Table, segment: str, root: Path | None = None) -> None:
    """Fold a just-written segment in a background thread (never delays the log's writes).

    A full queue or an exit before the fold loses nothing: ``catch_up`` folds the segment
    from disk later.
    """
    global _worker
    with _start:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_drain, name="keizoku-buckets", daemon=True)
            _worker.start()
    try:
        _queue.put_nowait((model, table, segment, root))
    except queue.Full:
        _log.warning("Bucket queue full: segment %s of '%s' is folded later.", segment, model)


def wait_folded(timeout: float | None = None) -> bool:
    """Block until every submitted segment is folded, at most ``timeout`` seconds; whether
    they all were. The log waits here on close, so a process never exits while the folding
    thread is inside DuckDB (a daemon thread stopped there aborts the process: SIGABRT)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _queue.all_tasks_done:
        while _queue.unfinished_tasks:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            _queue.all_tasks_done.wait(left)
    return True


def folded_segments(model: str, root: Path | None = None) -> set[str]:
    """The names of the segments already folded into ``model``'s buckets."""
    if not _db(model, root).is_file():
        return set()
    conn = _connect(model, root)
    try:
        return {r[0] for r in conn.execute("SELECT segment FROM folded")}
    finally:
        conn.close()


def catch_up(model: str, root: Path | None = None) -> int:
    """Fold the model's segments not folded yet (oldest first); the number folded.

    A compacted file (``cmp-…``) is never folded: compaction takes folded segments only
    (``keizoku.monitoring.compact``), so its rows are in the buckets already, and the
    segments it replaces are skipped by the reader rule (``log.live_files``)."""
    folder = log_dir(model, root)
    if not folder.is_dir():
        return 0
    done = folded_segments(model, root)
    import pyarrow.parquet as pq

    todo = [p for p in live_files(folder)
            if p.name not in done and not p.name.startswith(COMPACTED + "-")]  # fmt: skip
    folded = 0
    for path in todo:
        try:
            table = pq.read_table(path)
        except FileNotFoundError:  # compacted and deleted meanwhile: folded before that
            continue
        folded += fold_table(model, table, path.name, root)
    return folded


# --------------------------------------------------------------------------------- reads


def drift_series(
    model: str, version: int, width: int, since: float, root: Path | None = None
) -> dict[str, list[DriftPoint]]:
    """Per feature (``__prediction__`` for the predictions), its buckets from ``since``."""
    if not _db(model, root).is_file():
        return {}
    conn = _connect(model, root)
    try:
        rows = conn.execute(
            "SELECT feature, bucket, n, distance, threshold, drifted FROM drift "
            "WHERE width=? AND version=? AND bucket>=? ORDER BY feature, bucket",
            (width, version, since),
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[DriftPoint]] = {}
    for feature, bucket, n, distance, threshold, drifted in rows:
        out.setdefault(feature, []).append(
            DriftPoint(bucket, n, distance, threshold, bool(drifted))
        )
    return out


def _percentile(hist: list[int], q: float) -> float:
    """The upper latency bin edge below which a share ``q`` of the rows falls (0: none)."""
    total = sum(hist)
    if total == 0:
        return 0.0
    i = bisect_left(list(accumulate(hist)), q * total)
    return float(LATENCY_MS[min(i, len(LATENCY_MS) - 1)])


def traffic_series(
    model: str, width: int, since: float, root: Path | None = None
) -> list[TrafficPoint]:
    """Served rows and latency percentiles per bucket from ``since`` (all versions)."""
    if not _db(model, root).is_file():
        return []
    conn = _connect(model, root)
    try:
        rows = conn.execute(
            "SELECT bucket, n, latency FROM traffic WHERE width=? AND bucket>=? ORDER BY bucket",
            (width, since),
        ).fetchall()
    finally:
        conn.close()
    merged: dict[float, tuple[int, list[int]]] = {}
    for bucket, n, latency in rows:
        hist = json.loads(latency)
        old = merged.get(bucket)
        if old is not None:
            n, hist = n + old[0], [a + b for a, b in zip(old[1], hist, strict=True)]
        merged[bucket] = (n, hist)
    return [
        TrafficPoint(b, n, _percentile(h, 0.5), _percentile(h, 0.95))
        for b, (n, h) in sorted(merged.items())
    ]
