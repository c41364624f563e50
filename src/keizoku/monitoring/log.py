"""The prediction log: every served prediction, appended as Parquet segments.

``PredictionLog.append`` only puts a record into an in-memory buffer (it never
touches the disk); a background thread flushes the buffer every
``flush_interval_s`` into one Parquet segment per model under
``home()/predictions/<model>/``. A segment is written to a hidden temporary
name, fsynced and then ``os.replace``d into place, so a reader (DuckDB:
``read_parquet('.../*.parquet')``) never sees a half-written segment.

Durability:

* ``close()`` (graceful shutdown) writes every record ``append`` accepted.
* after a hard kill (``kill -9``) at most the records of the last flush interval
  are lost, and every segment on disk is complete.
* the buffer is bounded (``max_buffer`` records). When it is full, ``append``
  drops the *new* record instead of blocking the request, and counts it in
  ``dropped`` (also in ``stats()``); the first drop is logged as a warning.

Columns of a segment: ``request_id, ts, model, version, variant, entity_id,
shadow, latency_ms, output`` (JSON), ``prediction`` (the label or value as text),
``score`` (a number: the regression value, or for a classifier the probability of
the positive class of a binary model / of the predicted class otherwise),
``inputs`` (JSON) and one typed column per input feature named ``f__<feature>``
(DOUBLE for numbers, VARCHAR otherwise) so drift aggregates run in SQL without
parsing JSON.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from keizoku.home import home

__all__ = ["PredictionLog", "FEATURE_PREFIX", "log_dir", "segment_glob", "write_segment"]

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
    ("output", pa.string()),
    ("prediction", pa.string()),
    ("score", pa.float64()),
    ("inputs", pa.string()),
]


def log_dir(model: str, root: Path | None = None, kind: str = "predictions") -> Path:
    """Folder of one model's segments: ``<root or home()>/<kind>/<model>``."""
    base = Path(root) if root is not None else home()
    return base / kind / _safe(model)


def segment_glob(model: str, root: Path | None = None, kind: str = "predictions") -> str:
    return str(log_dir(model, root, kind) / "*.parquet")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _prediction_fields(output: Any) -> tuple[str | None, float | None]:
    """(prediction as text, numeric score) from whatever the server returned."""
    if isinstance(output, dict):
        pred = output.get("prediction", output.get("label"))
        probs = output.get("probabilities", output.get("proba"))
        score: float | None = None
        if isinstance(probs, dict) and probs:
            values = [float(v) for v in probs.values()]
            score = values[-1] if len(values) == 2 else max(values)
        elif isinstance(pred, int | float) and not isinstance(pred, bool):
            score = float(pred)
        return (None if pred is None else _text(pred)), score
    if isinstance(output, list | tuple) and len(output) == 1:
        return _prediction_fields(output[0])
    if _is_number(output):
        return _text(output), float(output)
    return (None if output is None else _text(output)), None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _feature_columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    names: dict[str, None] = {}
    for row in rows:
        inputs = row["inputs"]
        if isinstance(inputs, dict):
            names.update(dict.fromkeys(inputs))
    out: dict[str, pa.Array] = {}
    for name in names:
        values = [r["inputs"].get(name) if isinstance(r["inputs"], dict) else None for r in rows]
        present = [v for v in values if v is not None]
        if all(_is_number(v) or isinstance(v, bool) for v in present):
            nums = [None if v is None else float(v) for v in values]
            nums = [None if v is not None and math.isnan(v) else v for v in nums]
            out[FEATURE_PREFIX + str(name)] = pa.array(nums, pa.float64())
        else:
            out[FEATURE_PREFIX + str(name)] = pa.array(
                [None if v is None else _text(v) for v in values], pa.string()
            )
    return out


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, Any] = {name: [] for name, _ in _META}
    for r in rows:
        pred, score = _prediction_fields(r["output"])
        cols["request_id"].append(r["request_id"])
        cols["ts"].append(float(r["ts"]))
        cols["model"].append(r["model"])
        cols["version"].append(int(r["version"]))
        cols["variant"].append(r["variant"])
        cols["entity_id"].append(None if r["entity_id"] is None else str(r["entity_id"]))
        cols["shadow"].append(bool(r["shadow"]))
        cols["latency_ms"].append(float(r["latency_ms"]))
        cols["output"].append(_json(r["output"]))
        cols["prediction"].append(pred)
        cols["score"].append(score)
        cols["inputs"].append(_json(r["inputs"]))
    arrays = {name: pa.array(cols[name], typ) for name, typ in _META}
    arrays.update(_feature_columns(rows))
    return pa.table(arrays)


def write_segment(folder: Path, table: pa.Table, prefix: str = "seg") -> Path:
    """Write ``table`` as a new segment: temp name, fsync, atomic rename, fsync the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
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
        *,
        request_id: str,
        ts: float,
        model: str,
        version: int,
        variant: str,
        inputs: dict[str, Any],
        output: Any,
        latency_ms: float,
        entity_id: str | None = None,
        shadow: bool = False,
    ) -> None:
        """Buffer one prediction; never waits for the disk. Full buffer: the record is dropped."""
        record = {
            "request_id": request_id,
            "ts": ts,
            "model": model,
            "version": version,
            "variant": variant,
            "inputs": inputs,
            "output": output,
            "latency_ms": latency_ms,
            "entity_id": entity_id,
            "shadow": shadow,
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
                    write_segment(log_dir(model, self.root), table)
                    self.written += len(part)
                except OSError as exc:  # disk full, permissions: keep the rows, retry next time
                    self.failed_flushes += 1
                    _log.error("Could not write %d predictions of '%s': %s", len(part), model, exc)
                    failed.extend(part)
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

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()
