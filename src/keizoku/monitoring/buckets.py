"""Drift and traffic pre-aggregated per hour and per day, folded in as the log is written.

A page that draws a year of drift must not scan a million logged predictions. So each
prediction-log segment is *folded* once, when the log writes it (``PredictionLog.flush``
hands it to :func:`submit`, which folds it in a background thread so the log's own writes
never wait), or later by :func:`catch_up` (segments written by another process, lost from
the queue, or written before this module existed): per model version, per hour and day,

* per feature, the counts drift needs (``keizoku.monitoring.drift.collect_counts``, the
  same DuckDB query ``keizoku monitor`` runs, once per segment for its hours; a day's
  counts are the sum of its hours') added to what the bucket held, and the bucket's
  verdict recomputed from the merged counts (``compare_numeric`` /
  ``compare_categorical`` with the default ``DriftConfig``): distance, threshold, drifted;
* the number of served rows and a latency histogram (``LATENCY_MS`` bin edges);
* for a calibrated classifier, the confidence-based estimate of its metric
  (``keizoku.monitoring.estimate``: accuracy, or log loss when that is the metric; both
  are means over rows, so a bucket's estimate merges exactly).

A verdict is stored with the statistics behind it (p-value, distance, null-rate test), and
:func:`drift_series` judges them again with the caller's ``DriftConfig`` (the spec's
``monitoring:`` thresholds: ``drift.drift_rule``, the rule ``keizoku monitor`` applies).

Two more sources are folded here, so that every worker and server of a home reads the same
numbers:

* **labels** (:func:`fold_feedback`, from :func:`catch_up`): a feedback segment is joined
  to the log to find the days whose predictions it labels; those days' labelled rows
  (``performance.labelled_rows``) are scored again per bucket with the training metric;
* **requests** (:func:`add_requests`, from ``serving.metrics``): each process adds its
  request count, errors and server-side latency histogram per hour every few seconds.

Reads (:func:`drift_series`, :func:`traffic_series`, :func:`label_series`, …) are one
indexed SELECT each.

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
from collections.abc import Iterator
from contextlib import contextmanager
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
    "LabelPoint",
    "RequestPoint",
    "TrafficPoint",
    "WindowCounts",
    "add_requests",
    "catch_up",
    "drift_series",
    "estimate_series",
    "fold_feedback",
    "fold_table",
    "folded_segments",
    "label_series",
    "percentile",
    "request_series",
    "submit",
    "traffic_series",
    "version_traffic",
    "wait_folded",
    "window_counts",
]

HOUR, DAY = 3600, 86400
WIDTHS = (HOUR, DAY)
LATENCY_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
PREDICTION = "__prediction__"
_NULL = "\x00null"
FEEDBACK = "feedback/"  # the ``folded`` name of a feedback segment
_log = logging.getLogger("keizoku.monitoring")  # a null level in the JSON of categorical counts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folded (segment TEXT PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    width INTEGER, bucket REAL, version INTEGER, feature TEXT,
    counts TEXT NOT NULL, n INTEGER NOT NULL, distance REAL,
    threshold REAL NOT NULL, drifted INTEGER NOT NULL,
    PRIMARY KEY (width, version, feature, bucket)
);
CREATE TABLE IF NOT EXISTS labels (
    width INTEGER, bucket REAL, version INTEGER, metric TEXT NOT NULL, value REAL,
    n INTEGER NOT NULL, PRIMARY KEY (width, version, bucket)
);
CREATE TABLE IF NOT EXISTS estimate (
    width INTEGER, bucket REAL, version INTEGER, metric TEXT NOT NULL, n INTEGER NOT NULL,
    total REAL NOT NULL, PRIMARY KEY (width, version, bucket)
);
CREATE TABLE IF NOT EXISTS requests (
    width INTEGER, bucket REAL, requests INTEGER NOT NULL, errors INTEGER NOT NULL,
    latency TEXT NOT NULL, PRIMARY KEY (width, bucket)
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
class LabelPoint:
    """A metric in one bucket: from labels (``n`` labelled rows) or estimated (``n`` rows)."""

    bucket: float
    n: int
    metric: str
    value: float | None


@dataclass(frozen=True)
class RequestPoint:
    """Prediction requests in one bucket, every process of the home together."""

    bucket: float
    requests: int
    errors: int
    latency: list[int]  # histogram over the caller's bin edges (``serving.metrics.BUCKETS``)


@dataclass(frozen=True)
class TrafficPoint:
    """Served rows and latency percentiles (upper bin edges, ms) in one bucket."""

    bucket: float
    n: int
    p50_ms: float
    p95_ms: float


def _db(model: str, root: Path | None) -> Path:
    return log_dir(model, root, "buckets") / "buckets.sqlite"


_STATS = ("kind TEXT", "p_value REAL", "null_p REAL", "null_effect REAL")  # drift, since s6


def _connect(model: str, root: Path | None) -> sqlite3.Connection:
    path = _db(model, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    if conn.execute("PRAGMA user_version").fetchone()[0] < 2:
        conn.executescript(_SCHEMA)
        have = {r[1] for r in conn.execute("PRAGMA table_info(drift)")}
        for column in _STATS:
            if column.split()[0] not in have:
                try:  # another process may add it at the same moment
                    conn.execute(f"ALTER TABLE drift ADD COLUMN {column}")
                except sqlite3.OperationalError:
                    pass
        conn.execute("PRAGMA user_version = 2")
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


def _wider(counts: BucketCounts, width: int) -> BucketCounts:
    """``counts`` per bucket of ``width`` (a multiple of theirs): each the sum of the buckets
    it holds (every count adds up: hours to days)."""
    from keizoku.monitoring.drift import BucketCounts

    def wide(bucket: float) -> float:
        return float(math.floor(bucket / width) * width)

    rows: dict[float, int] = {}
    for bucket, n in counts.rows.items():
        rows[wide(bucket)] = rows.get(wide(bucket), 0) + n
    numeric: dict[str, dict[float, NumericCounts]] = {}
    for name, per in counts.numeric.items():
        out = numeric[name] = {}
        for bucket, num in sorted(per.items()):
            was = out.get(wide(bucket))
            out[wide(bucket)] = num if was is None else _add_numeric(was, num)
    levels: dict[str, dict[float, dict[str | None, int]]] = {}
    for name, per_levels in counts.categorical.items():
        out_levels = levels[name] = {}
        for bucket, lv in sorted(per_levels.items()):
            was_lv = out_levels.get(wide(bucket))
            out_levels[wide(bucket)] = lv if was_lv is None else _add_levels(was_lv, lv)
    return BucketCounts(sorted(rows), rows, numeric, levels)


def _fold_drift(
    conn: sqlite3.Connection, con: Any, ref: Reference, version: int, columns: set[str]
) -> None:
    """The version's drift counts per hour and per day, from the segment ``seg`` in ``con``:
    one scan counts the hours, and each day is the sum of its hours."""
    from keizoku.monitoring.drift import DriftConfig, collect_counts

    cols = {f: f'"{FEATURE_PREFIX}{f}"' for f in ref.features if FEATURE_PREFIX + f in columns}
    kind = ref.prediction.kind if ref.prediction else "numeric"
    source = (f"SELECT floor(ts / {HOUR}) * {HOUR} AS bucket, * FROM seg "
              f"WHERE version = {int(version)} AND NOT shadow")  # fmt: skip
    hours = collect_counts(con, source, ref, cols, "score" if kind == "numeric" else "prediction")
    cfg = DriftConfig()
    for width in WIDTHS:
        counts = hours if width == HOUR else _wider(hours, width)
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
        "INSERT OR REPLACE INTO drift (width, bucket, version, feature, counts, n, distance, "
        "threshold, drifted, kind, p_value, null_p, null_effect) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (*key, text, fd.n, distance, float(fd.threshold), int(fd.drifted), fd.kind,
         float(fd.p_value), float(fd.null_p), float(fd.null_effect)),
    )  # fmt: skip


ESTIMATED = ("accuracy", "log_loss")  # means over rows: a bucket's estimate merges exactly


def _fold_estimate(
    conn: sqlite3.Connection, table: pa.Table, ref: Reference, version: int, columns: set[str]
) -> None:
    """The confidence-based estimate of the version's metric per bucket (a calibrated
    classifier with logged scores only)."""
    from keizoku.monitoring.estimate import estimable, estimate_metrics

    if ref.calibration is None or "score" not in columns:
        return
    metric = ref.metric if ref.metric in ESTIMATED and estimable(ref.task, ref.metric) else (
        "accuracy")  # fmt: skip
    if not estimable(ref.task, metric):
        return
    score = table.column("score").to_numpy(zero_copy_only=False).astype(float)
    pick = (table.column("version").to_numpy(zero_copy_only=False) == version) & ~table.column(
        "shadow").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(score)  # fmt: skip
    ts = table.column("ts").to_numpy(zero_copy_only=False)[pick]
    score = score[pick]
    for width in WIDTHS:
        bucket = np.floor(ts / width) * width
        for b in np.unique(bucket):
            s = score[bucket == b]
            value = estimate_metrics(s, ref.calibration, [metric]).get(metric, float("nan"))
            if not math.isfinite(value):
                continue
            key = (width, float(b), version)
            row = conn.execute("SELECT n, total FROM estimate WHERE width=? AND bucket=? AND "
                               "version=?", key).fetchone()  # fmt: skip
            n, total = len(s) + (row[0] if row else 0), value * len(s) + (row[1] if row else 0.0)
            conn.execute("INSERT OR REPLACE INTO estimate VALUES (?,?,?,?,?,?)",
                         (*key, metric, n, total))  # fmt: skip


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


@contextmanager
def _writing(model: str, root: Path | None) -> Iterator[sqlite3.Connection]:
    """One write transaction on the model's buckets: committed, or rolled back on error."""
    conn = _connect(model, root)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def _folded(conn: sqlite3.Connection, segment: str, rows: int) -> bool:
    """Whether ``segment`` was folded already; else record it (in the fold's transaction)."""
    if conn.execute("SELECT 1 FROM folded WHERE segment=?", (segment,)).fetchone():
        return True
    conn.execute("INSERT INTO folded VALUES (?, ?)", (segment, rows))
    return False


def fold_table(model: str, table: pa.Table, segment: str, root: Path | None = None) -> bool:
    """Add one segment's rows to ``model``'s buckets; False when it was folded already.

    Each version's reference is looked up once per segment; a DuckDB cursor (on the
    process's database, ``monitoring.duck``) is taken only when a version has one.
    """
    con: Any = None
    try:
        with _writing(model, root) as conn:
            if _folded(conn, segment, table.num_rows):
                return False
            columns = set(table.column_names)
            versions = {int(v) for v in table.column("version").to_pylist() if v is not None}
            for version in sorted(versions):
                ref = _reference(model, version)
                if ref is None:
                    continue
                if con is None:
                    con = _segment_db(table)
                _fold_drift(conn, con, ref, version, columns)
                _fold_estimate(conn, table, ref, version, columns)
            _fold_traffic(conn, table)
    finally:
        if con is not None:
            con.close()
    return True


def _segment_db(table: pa.Table) -> Any:
    """A DuckDB cursor that reads ``table`` as ``seg`` (``monitoring.duck``)."""
    from keizoku.monitoring.duck import duckdb_cursor

    con = duckdb_cursor()
    con.register("seg", table)
    return con


def _labelled_span(model: str, segment: Path, root: Path | None) -> tuple[float, float] | None:
    """The first and last time of the logged predictions a feedback segment labels (by
    request id, or by entity id as ``performance.labelled_rows`` joins it)."""
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.log import log_scan, parquet_scan, segment_glob

    if not live_files(log_dir(model, root)):
        return None
    sql = f"""
    WITH p AS (SELECT request_id, entity_id, ts FROM {log_scan(segment_glob(model, root))}
               WHERE NOT shadow),
    f AS (SELECT * FROM {parquet_scan([str(segment)])}),
    hit AS (
        SELECT p.ts FROM f JOIN p USING (request_id)
        UNION ALL
        SELECT pp.ts FROM (SELECT * FROM f WHERE request_id IS NULL AND entity_id IS NOT NULL) fe
        ASOF JOIN p pp ON fe.entity_id = pp.entity_id AND fe.ts >= pp.ts
    )
    SELECT min(ts), max(ts) FROM hit"""
    with duckdb_cursor() as con:
        lo, hi = con.execute(sql).fetchone() or (None, None)
    return None if lo is None else (float(lo), float(hi))


def _score_labels(conn: sqlite3.Connection, model: str, since: float, until: float,
                  root: Path | None) -> None:  # fmt: skip
    """Score every labelled prediction of [since, until) per bucket and version again."""
    from keizoku.monitoring.performance import labelled_rows, metric_on_rows

    cols = "p.ts, p.version, p.shadow, p.prediction, p.score, p.probabilities"
    rows = labelled_rows(model, since=since, until=until, columns=cols, root=root)
    rows = rows[~rows["shadow"].astype(bool)]
    for width in WIDTHS:
        keys = (np.floor(rows["ts"].to_numpy(dtype=float) / width) * width, rows["version"])
        for (bucket, version), part in rows.groupby(list(keys), sort=False):
            ref = _reference(model, int(version))
            if ref is None:
                continue
            value = metric_on_rows(part, ref.metric, ref.task, ref.classes)
            conn.execute("INSERT OR REPLACE INTO labels VALUES (?,?,?,?,?,?)",
                         (width, float(bucket), int(version), ref.metric,
                          value if math.isfinite(value) else None, len(part)))  # fmt: skip


def fold_feedback(model: str, segment: Path, root: Path | None = None) -> bool:
    """Score again the days of predictions a feedback segment labels; False when it was
    folded already. (A label may replace an earlier one for the same request: a bucket's
    metric is recomputed from its labelled rows, never added to.)"""
    with _writing(model, root) as conn:
        if _folded(conn, FEEDBACK + segment.name, 0):
            return False
        span = _labelled_span(model, segment, root)
        if span is not None:
            since = math.floor(span[0] / DAY) * DAY  # whole days: hours and days agree
            _score_labels(conn, model, since, math.floor(span[1] / DAY) * DAY + DAY, root)
    return True


def add_requests(
    model: str, hours: dict[float, tuple[int, int, list[int]]], root: Path | None = None
) -> None:
    """Add one process's prediction requests per hour: (requests, errors, latency
    histogram), to the hourly and daily buckets every process of the home shares."""
    with _writing(model, root) as conn:
        for hour, (n, errors, hist) in hours.items():
            for width in WIDTHS:
                key = (width, math.floor(hour / width) * width)
                row = conn.execute("SELECT requests, errors, latency FROM requests WHERE "
                                   "width=? AND bucket=?", key).fetchone()  # fmt: skip
                was = (0, 0, [0] * len(hist)) if row is None else (
                    row[0], row[1], json.loads(row[2]))  # fmt: skip
                total = [a + b for a, b in zip(was[2], hist, strict=True)]
                values = (*key, n + was[0], errors + was[1], json.dumps(total))
                conn.execute("INSERT OR REPLACE INTO requests VALUES (?,?,?,?,?)", values)


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
    """Fold the model's segments not folded yet (oldest first), then its feedback segments
    not folded yet; the number folded.

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
    from keizoku.monitoring.feedback import FEEDBACK_KIND

    for path in live_files(log_dir(model, root, FEEDBACK_KIND)):
        if FEEDBACK + path.name not in done:
            folded += fold_feedback(model, path, root)
    return folded


# --------------------------------------------------------------------------------- reads


def _rows(model: str, root: Path | None, sql: str, args: tuple[Any, ...]) -> list[Any]:
    if not _db(model, root).is_file():
        return []
    conn = _connect(model, root)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def drift_series(
    model: str,
    version: int,
    width: int,
    since: float,
    root: Path | None = None,
    config: DriftConfig | None = None,
) -> dict[str, list[DriftPoint]]:
    """Per feature (``__prediction__`` for the predictions), its buckets from ``since``,
    judged with ``config`` (the spec's ``monitoring:`` section; default ``DriftConfig()``)."""
    from keizoku.monitoring.drift import DriftConfig, drift_rule, numeric_limit

    cfg = config or DriftConfig()
    ref = _reference(model, version)
    ref_rows = {f: int(r.n * (1 - r.null_rate)) for f, r in (ref.features if ref else {}).items()}
    rows = _rows(model, root,
                 "SELECT feature, bucket, n, distance, threshold, drifted, kind, p_value, null_p, "
                 "null_effect FROM drift WHERE width=? AND version=? AND bucket>=? "
                 "ORDER BY feature, bucket", (width, version, since))  # fmt: skip
    out: dict[str, list[DriftPoint]] = {}
    for feature, bucket, n, distance, threshold, drifted, kind, p, null_p, null_h in rows:
        if kind is not None:  # the statistics are stored: judge them with ``cfg``
            d = float("nan") if distance is None else distance
            limit = numeric_limit(cfg, ref_rows.get(feature, n), n) if kind == "numeric" else None
            shape, nulls, threshold = drift_rule(kind, p, d, null_p, null_h, cfg, limit)
            drifted = n >= cfg.min_rows and (shape or nulls)
        out.setdefault(feature, []).append(
            DriftPoint(bucket, n, distance, threshold, bool(drifted))
        )
    return out


@dataclass
class WindowCounts:
    """What :func:`window_counts` read: the drift counts of a window, or why not."""

    counts: BucketCounts | None  # None: the pre-aggregates do not cover the window exactly
    why: str  # one line: what was read, or why the caller must scan the rows
    buckets: int = 0  # the stored buckets merged


def _hour_counts(
    conn: sqlite3.Connection, version: int, width: int, lo: float, hi: float | None
) -> dict[float, dict[str, tuple[int, str]]]:
    """{bucket: {feature: (n, counts JSON)}} of ``width`` buckets in [lo, hi)."""
    sql = "SELECT bucket, feature, n, counts FROM drift WHERE width=? AND version=? AND bucket>=?"
    args: tuple[Any, ...] = (width, version, lo)
    if hi is not None:
        sql, args = sql + " AND bucket<?", (*args, hi)
    out: dict[float, dict[str, tuple[int, str]]] = {}
    for bucket, feature, n, counts in conn.execute(sql, args):
        out.setdefault(float(bucket), {})[feature] = (int(n), counts)
    return out


def _served(conn: sqlite3.Connection, width: int, lo: float, hi: float | None) -> list[Any]:
    sql = "SELECT bucket, version, n FROM traffic WHERE width=? AND bucket>=? AND n>0"
    args: tuple[Any, ...] = (width, lo)
    if hi is not None:
        sql, args = sql + " AND bucket<?", (*args, hi)
    return conn.execute(sql, args).fetchall()


def window_counts(
    model: str,
    version: int,
    reference: Reference,
    start: float,
    width: int,
    root: Path | None = None,
) -> WindowCounts:
    """The drift counts of every row served from ``start`` (a whole hour) on, per bucket
    of ``width`` (``HOUR`` or ``DAY``), merged from the pre-aggregates: the counts the
    row scan of ``keizoku monitor`` (``drift.collect_counts``) would have found, exactly.

    A first day that starts inside the window's first hour is merged from its hourly
    buckets. ``counts`` is None (and ``why`` says why) when the stored buckets do not
    hold exactly those rows: a segment not folded yet (call :func:`catch_up` first), a
    bucket folded without this version's reference or in an older format, or rows served
    by another version in the window (the row scan judges every served row against this
    version's reference; the buckets hold each version's rows against its own)."""
    from keizoku.monitoring.drift import BucketCounts

    if start % HOUR:
        raise ValueError(f"start {start!r} is not a whole hour")
    folder = log_dir(model, root)
    if not _db(model, root).is_file():
        return WindowCounts(None, "no bucket pre-aggregates for this log")
    done = folded_segments(model, root)
    behind = [p.name for p in live_files(folder)
              if p.name not in done and not p.name.startswith(COMPACTED + "-")]  # fmt: skip
    if behind:
        return WindowCounts(None, f"{len(behind)} log segment(s) not folded into the buckets")
    first_day = math.ceil(start / DAY) * DAY if width == DAY else None
    conn = _connect(model, root)
    try:
        served = _served(conn, HOUR, start, first_day)
        stored = _hour_counts(conn, version, HOUR, start, first_day)
        if first_day is not None:
            served += _served(conn, DAY, first_day, None)
            days = _hour_counts(conn, version, DAY, first_day, None)
    finally:
        conn.close()
    others = sorted({int(v) for _, v, _ in served if int(v) != version})
    if others:
        return WindowCounts(None, "version(s) " + ", ".join(map(str, others))
                            + " also served rows in the window")  # fmt: skip
    feats = _features(reference)
    expected = {float(b): int(n) for b, _, n in served}
    if first_day is not None:
        expected_days = {b: n for b, n in expected.items() if b >= first_day}
        expected = {b: n for b, n in expected.items() if b < first_day}
    parts = [(expected, stored)] + ([(expected_days, days)] if first_day is not None else [])
    numeric: dict[str, dict[float, NumericCounts]] = {f: {} for f, r in feats.items()
                                                      if r.kind == "numeric"}  # fmt: skip
    levels: dict[str, dict[float, dict[str | None, int]]] = {f: {} for f, r in feats.items()
                                                             if r.kind != "numeric"}  # fmt: skip
    rows: dict[float, int] = {}
    merged = 0
    for want, have in parts:
        for bucket, n in sorted(want.items()):
            got = have.get(bucket, {})
            short = [f for f in feats if got.get(f, (0, ""))[0] != n]
            if short:
                return WindowCounts(None, f"the bucket of {_utc(bucket)} lacks the drift "
                                    f"counts of {len(short)} feature(s)")  # fmt: skip
            try:
                _add_bucket(numeric, levels, got, math.floor(bucket / width) * width)
            except KeyError:  # a bucket folded before the Wasserstein tails were stored
                return WindowCounts(None, f"the bucket of {_utc(bucket)} has an older format")
            b = math.floor(bucket / width) * width
            rows[b] = rows.get(b, 0) + n
            merged += 1
    counts = BucketCounts(sorted(rows), rows, numeric, levels)
    return WindowCounts(counts, f"{merged} stored bucket(s) merged", merged)


def _add_bucket(
    numeric: dict[str, dict[float, NumericCounts]],
    levels: dict[str, dict[float, dict[str | None, int]]],
    stored: dict[str, tuple[int, str]],
    bucket: float,
) -> None:
    """Add one stored bucket's counts to ``bucket`` of the window (hours add up to days)."""
    for feature, per in numeric.items():
        num = _load_numeric(stored[feature][1])
        was = per.get(bucket)
        per[bucket] = num if was is None else _add_numeric(was, num)
    for feature, per_levels in levels.items():
        lv = _load_levels(stored[feature][1])
        was_lv = per_levels.get(bucket)
        per_levels[bucket] = lv if was_lv is None else _add_levels(was_lv, lv)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def percentile(hist: list[int], q: float, edges: tuple[float, ...] = LATENCY_MS) -> float:
    """The upper bin edge below which a share ``q`` of the counts falls (0: none); past
    the last edge, the last edge."""
    total = sum(hist)
    if total == 0:
        return 0.0
    i = bisect_left(list(accumulate(hist)), q * total)
    return float(edges[min(i, len(edges) - 1)])


def version_traffic(model: str, since: float, root: Path | None = None) -> dict[int, int]:
    """Served rows (not shadow) per version since ``since``, every process of the home."""
    rows = _rows(model, root, "SELECT version, sum(n) FROM traffic WHERE width=? AND bucket>=? "
                 "GROUP BY version", (HOUR, math.floor(since / HOUR) * HOUR))  # fmt: skip
    return {int(v): int(n) for v, n in rows}


def label_series(
    model: str, version: int, width: int, since: float, root: Path | None = None
) -> list[LabelPoint]:
    """The training metric on the labelled predictions of each bucket from ``since``."""
    rows = _rows(model, root, "SELECT bucket, n, metric, value FROM labels WHERE width=? AND "
                 "version=? AND bucket>=? ORDER BY bucket", (width, version, since))  # fmt: skip
    return [LabelPoint(*r) for r in rows]


def estimate_series(
    model: str, version: int, width: int, since: float, root: Path | None = None
) -> list[LabelPoint]:
    """The confidence-based estimate per bucket from ``since`` (calibrated classifiers)."""
    rows = _rows(model, root, "SELECT bucket, n, metric, total FROM estimate WHERE width=? AND "
                 "version=? AND bucket>=? ORDER BY bucket", (width, version, since))  # fmt: skip
    return [LabelPoint(b, n, metric, total / n if n else None) for b, n, metric, total in rows]


def request_series(
    model: str, width: int, since: float, root: Path | None = None
) -> list[RequestPoint]:
    """Prediction requests per bucket from ``since``, every process of the home."""
    rows = _rows(model, root, "SELECT bucket, requests, errors, latency FROM requests WHERE "
                 "width=? AND bucket>=? ORDER BY bucket", (width, since))  # fmt: skip
    return [RequestPoint(b, n, e, json.loads(h)) for b, n, e, h in rows]


def traffic_series(
    model: str, width: int, since: float, root: Path | None = None
) -> list[TrafficPoint]:
    """Served rows and latency percentiles per bucket from ``since`` (all versions)."""
    rows = _rows(model, root, "SELECT bucket, n, latency FROM traffic WHERE width=? AND "
                 "bucket>=? ORDER BY bucket", (width, since))  # fmt: skip
    merged: dict[float, tuple[int, list[int]]] = {}
    for bucket, n, latency in rows:
        hist = json.loads(latency)
        old = merged.get(bucket)
        if old is not None:
            n, hist = n + old[0], [a + b for a, b in zip(old[1], hist, strict=True)]
        merged[bucket] = (n, hist)
    return [
        TrafficPoint(b, n, percentile(h, 0.5), percentile(h, 0.95))
        for b, (n, h) in sorted(merged.items())
    ]
