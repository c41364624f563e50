"""The prediction log: every served prediction, appended as Parquet segments.

``PredictionLog.append`` only puts a record into an in-memory buffer (it never
touches the disk); a background thread flushes the buffer every
``flush_interval_s`` into one Parquet segment per model under
``<log root>/predictions/<model>/`` (the log root is ``KEIZOKU_LOG_ROOT``, else
``KEIZOKU_HOME``). A segment is written to a hidden temporary name, fsynced and then
``os.replace``d into place, so a reader never sees a half-written segment. Its name
carries the writing server (``seg-<time_ns>-<host>-<pid>-<random>.parquet``), so several
servers can write one shared folder without colliding.

**The reader rule** (docs/log.md, decision 25): ``keizoku log compact``
(``keizoku.monitoring.compact``) replaces small segments by one ``cmp-…`` file whose
Parquet metadata lists the names it replaces (``keizoku.replaces``); the replaced files
are deleted later. A reader lists the folder once (:func:`segment_files`), drops every
name a listed ``cmp-`` file replaces and reads the rest (:func:`parquet_scan`): at any
instant it sees every record exactly once.

Durability:

* ``close()`` (graceful shutdown) writes every record ``append`` accepted.
* after a hard kill (``kill -9``) at most the records of the last flush interval
  are lost, and every segment on disk is complete.
* the buffer is bounded (``max_buffer`` records). When it is full, ``append``
  drops the *new* record instead of blocking the request, and counts it in
  ``dropped`` (also in ``stats()``); the first drop is logged as a warning.

Columns of a segment (one record = one ``keizoku.prediction.Prediction``):
``request_id, ts, model, version`` (int)``, variant, entity_id, shadow`` (bool)``,
latency_ms``, ``prediction`` (the canonical label text, or the regression value as
text), ``probabilities`` (JSON text of class → probability, null for regression),
``score`` (the positive-class probability of a binary model, the top probability of a
multiclass one (null in older segments), the value of a regression), ``inputs`` (JSON
text) and one column per input feature named ``f__<feature>``, typed from the served
schema (DOUBLE for numeric features, VARCHAR holding the canonical text otherwise) so
drift aggregates run in SQL without parsing JSON.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from keizoku.data.labels import canonical
from keizoku.home import home
from keizoku.names import safe_child
from keizoku.prediction import Prediction

__all__ = [
    "COMPACTED",
    "FEATURE_PREFIX",
    "REPLACES",
    "PredictionLog",
    "feature_types",
    "live_files",
    "log_dir",
    "log_root",
    "log_scan",
    "parquet_scan",
    "replaced_by",
    "segment_files",
    "segment_glob",
    "server_id",
    "write_segment",
]

FEATURE_PREFIX = "f__"
_log = logging.getLogger("keizoku.monitoring")

_META: list[tuple[str, pa.DataType]] = [
    ("request_id", pa.string()),
    ("ts", pa.float64()),
    ("model", pa.string()),
    ("version", pa.int64()),
    ("variant", pa.string()),
    ("entity_id", pa.string()),
    ("shadow", pa.bool_()),
    ("latency_ms", pa.float64()),
    ("prediction", pa.string()),
    ("probabilities", pa.string()),
    ("score", pa.float64()),
    ("inputs", pa.string()),
]


COMPACTED = "cmp"  # the name prefix of a compacted file
REPLACES = b"keizoku.replaces"  # its Parquet metadata key: JSON list of the names replaced


def log_root() -> Path:
    """Where the log lives: ``KEIZOKU_LOG_ROOT`` (a folder several servers share), else
    the home."""
    value = os.environ.get("KEIZOKU_LOG_ROOT")
    return Path(value).expanduser() if value else home()


def log_dir(model: str, root: Path | None = None, kind: str = "predictions") -> Path:
    """Folder of one model's segments: ``<root or log_root()>/<kind>/<model>``."""
    base = Path(root) if root is not None else log_root()
    return safe_child(base / kind, model)


def segment_glob(model: str, root: Path | None = None, kind: str = "predictions") -> str:
    """Every segment file, replaced ones included: for listing, never for reading
    records (read :func:`segment_files`)."""
    return str(log_dir(model, root, kind) / "*.parquet")


_SERVER: list[str] = []


def server_id() -> str:
    """``<host>-<pid>`` of this process, in file-name characters."""
    pid = os.getpid()
    if not _SERVER or not _SERVER[0].endswith(f"-{pid}"):
        host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"
        _SERVER[:] = [f"{host}-{pid}"]
    return _SERVER[0]


_MANIFESTS: dict[tuple[str, int, int], frozenset[str]] = {}  # (path, mtime, size) → names
_MANIFESTS_KEPT = 1024
_MANIFESTS_LOCK = threading.Lock()


def replaced_by(path: Path) -> frozenset[str]:
    """The segment names a compacted file replaces (empty for any other file)."""
    if not path.name.startswith(COMPACTED + "-"):
        return frozenset()
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    names = _MANIFESTS.get(key)
    if names is None:
        meta = pq.read_metadata(path).metadata or {}
        names = frozenset(json.loads(meta.get(REPLACES, b"[]")))
        with _MANIFESTS_LOCK:
            _MANIFESTS[key] = names
            while len(_MANIFESTS) > _MANIFESTS_KEPT:  # a long-running server: oldest out
                _MANIFESTS.pop(next(iter(_MANIFESTS)))
    return names


def live_files(folder: Path) -> list[Path]:
    """The files a reader reads: every segment not replaced by a listed compacted file
    (the reader rule); a file that vanishes while listed was replaced and is skipped."""
    listed = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    gone: set[str] = set()
    for path in listed:
        try:
            gone |= replaced_by(path)
        except FileNotFoundError:  # a compacted file replaced by a newer one, deleted
            gone.add(path.name)
    return [p for p in listed if p.name not in gone]


def segment_files(model: str, root: Path | None = None, kind: str = "predictions") -> list[str]:
    """The model's log files to read, each record exactly once (see :func:`live_files`)."""
    return [str(p) for p in live_files(log_dir(model, root, kind))]


def parquet_scan(files: list[str]) -> str:
    """DuckDB's ``read_parquet`` over exactly ``files`` (columns united by name)."""
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}], union_by_name=true)"


def log_scan(pattern: str) -> str:
    """``read_parquet`` over the files to read of the folder a :func:`segment_glob` names
    (the reader rule); the caller checked there is one (``performance.has_files``)."""
    return parquet_scan([str(p) for p in live_files(Path(pattern).parent)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def feature_types(schema: Any) -> dict[str, pa.DataType]:
    """The ``f__`` column type of each input a served schema allows (features first)."""
    out: dict[str, pa.DataType] = {}
    for col in schema.columns:
        if col.role == "target":
            continue
        numeric = col.kind == "numeric" and col.role == "feature"
        out[col.name] = pa.float64() if numeric else pa.string()
    return out


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _as_double(value: Any) -> float | None:
    if not _is_number(value):
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _feature_columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    types: dict[str, pa.DataType] = {}
    for row in rows:
        for name, typ in (row["types"] or {}).items():
            types.setdefault(name, typ)
        if not row["types"] and isinstance(row["inputs"], dict):  # no schema: text columns
            types.update({k: pa.string() for k in row["inputs"] if k not in types})
    out: dict[str, pa.Array] = {}
    for name, typ in types.items():
        values = [r["inputs"].get(name) if isinstance(r["inputs"], dict) else None for r in rows]
        if pa.types.is_floating(typ):
            out[FEATURE_PREFIX + name] = pa.array([_as_double(v) for v in values], pa.float64())
        else:
            texts = [None if v is None else canonical(v) for v in values]
            out[FEATURE_PREFIX + name] = pa.array(texts, pa.string())
    return out


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, Any] = {name: [] for name, _ in _META}
    for r in rows:
        for name, _ in _META:
            cols[name].append(_json(r[name]) if name == "inputs" else r[name])
    arrays = {name: pa.array(cols[name], typ) for name, typ in _META}
    arrays.update(_feature_columns(rows))
    return pa.table(arrays)


def write_segment(folder: Path, table: pa.Table, prefix: str = "seg") -> Path:
    """Write ``table`` as a new segment: temp name, fsync, atomic rename, fsync the folder.

    The name is ``<prefix>-<time_ns>-<host>-<pid>-<random>.parquet`` (unique across the
    servers writing one folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{time.time_ns():020d}-{server_id()}-{uuid.uuid4().hex[:8]}.parquet"
    final = folder / name
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(folder)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fold(model: str, table: pa.Table, segment: Path, root: Path | None) -> None:
    """Hand a written segment to ``monitoring.buckets`` (folded in its own thread; a failure
    loses no record: the segment is on disk and ``buckets.catch_up`` folds it later)."""
    from keizoku.monitoring import buckets

    buckets.submit(model, table, segment.name, root)


def _close_at_exit(ref: weakref.ref[PredictionLog]) -> None:
    log = ref()
    if log is not None:
        log.close()


class PredictionLog:
    """Buffered, append-only prediction log (see the module docstring for durability)."""

    def __init__(
        self, root: Path | None = None, flush_interval_s: float = 1.0, max_buffer: int = 100_000
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffer = int(max_buffer)
        self.dropped = 0
        self.written = 0
        self.failed_flushes = 0
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="keizoku-prediction-log", daemon=True
        )
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def append(
        self,
        prediction: Prediction,
        *,
        ts: float,
        model: str,
        inputs: dict[str, Any],
        latency_ms: float,
        shadow: bool = False,
        types: Mapping[str, pa.DataType] | None = None,
    ) -> None:
        """Buffer one prediction; never waits for the disk. Full buffer: the record is dropped.

        ``types`` (from ``feature_types(schema)``, computed once per served version) types
        the ``f__`` columns; without it every input is logged as text.
        """
        entity = prediction.entity_id
        record = {
            "request_id": prediction.request_id,
            "ts": float(ts),
            "model": model,
            "version": int(prediction.version),
            "variant": prediction.variant,
            "entity_id": None if entity is None else str(entity),
            "shadow": bool(shadow),
            "latency_ms": float(latency_ms),
            **prediction.log_fields(),
            "inputs": inputs,  # serialised at flush time, off the request path
            "types": types,
        }
        with self._lock:
            if self._closed or len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                first = self.dropped == 1
            else:
                self._buffer.append(record)
                return
        if first:
            _log.warning(
                "Prediction log buffer is full (%d records) or closed: dropping records. "
                "Raise max_buffer or lower flush_interval_s.",
                self.max_buffer,
            )

    def stats(self) -> dict[str, int]:
        with self._lock:
            pending = len(self._buffer)
        return {
            "pending": pending,
            "written": self.written,
            "dropped": self.dropped,
            "failed_flushes": self.failed_flushes,
        }

    def flush(self) -> None:
        """Write every buffered record now (one segment per model)."""
        with self._write_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return
            by_model: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                by_model.setdefault(r["model"], []).append(r)
            failed: list[dict[str, Any]] = []
            for model, part in by_model.items():
                try:
                    table = _table(part)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    self.failed_flushes += 1
                    self.dropped += len(part)
                    _log.error(
                        "Dropped %d unloggable predictions of '%s': %s", len(part), model, exc
                    )
                    continue
                try:
                    segment = write_segment(log_dir(model, self.root), table)
                    self.written += len(part)
                except OSError as exc:  # disk full, permissions: keep the rows, retry next time
                    self.failed_flushes += 1
                    _log.error("Could not write %d predictions of '%s': %s", len(part), model, exc)
                    failed.extend(part)
                    continue
                _fold(model, table, segment, self.root)
            if failed:
                with self._lock:
                    room = max(self.max_buffer - len(self._buffer), 0)
                    self.dropped += max(len(failed) - room, 0)
                    self._buffer[:0] = failed[-room:] if room else []

    def close(self) -> None:
        """Stop the flusher and write everything ``append`` accepted. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        self.flush()
        buckets = sys.modules.get("keizoku.monitoring.buckets")
        if buckets is not None:  # let the folding thread finish before the process may exit
            buckets.wait_folded(timeout=30)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()
