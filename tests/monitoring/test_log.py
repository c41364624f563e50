"""The prediction log: buffering, segments, graceful close and kill -9 durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keizoku.monitoring.log import PredictionLog, log_dir
from keizoku.prediction import Prediction

TYPES = {"x": pa.float64(), "color": pa.string(), "flag": pa.string()}


def _append(log: PredictionLog, i: int, model: str = "m") -> None:
    probs = {"no": 0.25, "yes": 0.75}
    log.append(
        Prediction("yes", probs, 0.75, 1, "champion", f"r{i}", f"e{i}"),
        ts=1000.0 + i,
        model=model,
        inputs={"x": float(i), "color": "red" if i % 2 else "blue", "flag": i % 2 == 0},
        latency_ms=1.5,
        types=TYPES,
    )


def test_close_writes_every_acknowledged_record(tmp_path: Path) -> None:
    log = PredictionLog(root=tmp_path, flush_interval_s=60)
    for i in range(1000):
        _append(log, i)
    _append(log, 0, model="other")
    log.close()
    glob = str(log_dir("m", tmp_path) / "*.parquet")
    rows = (
        duckdb.connect()
        .execute(
            f"select count(*), count(distinct request_id), min(f__x), max(f__x), "
            f"min(score), any_value(prediction) from read_parquet('{glob}')"
        )
        .fetchone()
    )
    assert rows == (1000, 1000, 0.0, 999.0, 0.75, "yes")
    assert log.stats() == {"pending": 0, "written": 1001, "dropped": 0, "failed_flushes": 0}
    assert len(list(log_dir("other", tmp_path).glob("*.parquet"))) == 1


def test_columns_are_typed_from_the_schema_and_the_prediction(tmp_path: Path) -> None:
    """One record = one Prediction: typed columns, no guessing by readers."""
    log = PredictionLog(root=tmp_path, flush_interval_s=60)
    _append(log, 0)
    _append(log, 1)
    reg = Prediction(3.0, None, 3.0, 2, "challenger", "q1")
    log.append(reg, ts=1.0, model="reg", inputs={"x": "7"}, latency_ms=1.0, types=TYPES)
    log.close()
    table = pq.read_table(next(log_dir("m", tmp_path).glob("*.parquet")))
    assert table.schema.field("version").type == pa.int64()
    assert table.schema.field("shadow").type == pa.bool_()
    assert table.schema.field("f__x").type == pa.float64()
    assert table.schema.field("f__flag").type == pa.string()
    assert "output" not in table.column_names
    row = table.to_pylist()[0]
    assert row["prediction"] == "yes" and row["score"] == 0.75
    assert row["probabilities"] == '{"no": 0.25, "yes": 0.75}'
    assert row["f__flag"] == "true" and row["f__color"] == "blue"  # canonical text
    assert row["entity_id"] == "e0" and row["variant"] == "champion"
    other = pq.read_table(next(log_dir("reg", tmp_path).glob("*.parquet"))).to_pylist()[0]
    assert other["prediction"] == "3" and other["probabilities"] is None
    assert other["score"] == 3.0 and other["f__x"] is None  # a string is no DOUBLE value


def test_background_flush_writes_segments_without_close(tmp_path: Path) -> None:
    log = PredictionLog(root=tmp_path, flush_interval_s=0.05)
    for i in range(10):
        _append(log, i)
    deadline = time.monotonic() + 5
    while log.stats()["written"] < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.stats()["written"] == 10
    log.close()


def test_full_buffer_drops_new_records_and_counts_them(tmp_path: Path) -> None:
    log = PredictionLog(root=tmp_path, flush_interval_s=60, max_buffer=5)
    for i in range(8):
        _append(log, i)
    assert log.stats()["dropped"] == 3
    log.close()
    table = pq.read_table(next(log_dir("m", tmp_path).glob("*.parquet")))
    assert table.column("request_id").to_pylist() == [f"r{i}" for i in range(5)]


def test_append_after_close_is_counted_not_lost_silently(tmp_path: Path) -> None:
    log = PredictionLog(root=tmp_path, flush_interval_s=60)
    log.close()
    _append(log, 1)
    assert log.dropped == 1


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from keizoku.monitoring.log import PredictionLog
    from keizoku.prediction import Prediction
    log = PredictionLog(root=Path(sys.argv[1]), flush_interval_s=0.1)
    i = 0
    while True:
        pred = Prediction(float(i), None, float(i), 1, "a", f"r{i}")
        log.append(pred, ts=time.time(), model="m", inputs={"x": float(i), "c": "k" * (i % 7)},
                   latency_ms=0.1)
        i += 1
        if i % 200 == 0:
            print(i, flush=True)
            time.sleep(0.001)
    """
)


def test_kill_9_loses_at_most_the_last_interval_and_leaves_no_corrupt_segment(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = int(proc.stdout.readline())  # the writer is up and appending
    # At least 2 s of appending, and until a second segment is on disk: a loaded machine
    # can take longer than 2 s for the first flushes (the count of segments is not the
    # subject; that no segment is corrupt and only the tail is lost is).
    start = time.monotonic()
    folder = log_dir("m", tmp_path)
    while time.monotonic() - start < 2.0 or (
        len(list(folder.glob("*.parquet"))) < 2 and time.monotonic() - start < 120
    ):
        line = proc.stdout.readline()
        if line:
            acknowledged = int(line)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    segments = sorted(log_dir("m", tmp_path).glob("*.parquet"))
    assert len(segments) >= 2
    total = 0
    for seg in segments:  # every segment reads completely
        total += pq.read_table(seg).num_rows
    ids = (
        duckdb.connect()
        .execute(
            "select count(distinct request_id) from "
            f"read_parquet('{log_dir('m', tmp_path)}/*.parquet')"
        )
        .fetchone()
    )
    assert ids == (total,)
    # What is on disk is a prefix of what was appended: only the tail is missing ...
    glob = f"{log_dir('m', tmp_path)}/*.parquet"
    row = (
        duckdb.connect()
        .execute(f"select list(request_id), max(ts) from read_parquet('{glob}')")
        .fetchone()
    )
    assert row is not None
    ids, newest = row
    assert set(ids) == {f"r{i}" for i in range(total)}
    assert 0 < total <= acknowledged + 200
    # ... and that tail is at most the last flush interval (0.1 s) plus the time the last
    # flush took on this (loaded) machine.
    assert killed_at - newest < 1.5


def test_performance_readers_use_the_typed_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """labelled_rows/metric_on_rows read probabilities by class name, never by position."""
    from keizoku.data.labels import canonical
    from keizoku.monitoring.feedback import _write
    from keizoku.monitoring.performance import labelled_rows, metric_on_rows

    def labels(rows: list[tuple[str, object]]) -> list[dict[str, object]]:
        # The stored form (validation needs a registered model; this test is about readers).
        return [
            {"request_id": rid, "entity_id": None, "label": canonical(y),
             "label_num": None, "ts": 200.0, "received_ts": 200.0}
            for rid, y in rows
        ]  # fmt: skip

    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path))
    log = PredictionLog(flush_interval_s=60)
    classes = ["a", "b", "c"]
    for i in range(30):
        truth = classes[i % 3]
        probs = {c: (0.8 if c == truth else 0.1) for c in reversed(classes)}  # odd key order
        pred = Prediction(truth, probs, None, 1, "champion", f"m{i}")
        log.append(pred, ts=100.0 + i, model="multi", inputs={"x": i}, latency_ms=1.0)
        p1 = 0.9 if i % 2 else 0.2
        binary = Prediction(i % 2, {"1": p1, "0": 1 - p1}, p1, 1, "champion", f"b{i}")
        log.append(binary, ts=100.0 + i, model="bin", inputs={"x": i}, latency_ms=1.0)
    log.close()
    _write("multi", labels([(f"m{i}", classes[i % 3]) for i in range(30)]), None)
    _write("bin", labels([(f"b{i}", i % 2) for i in range(30)]), None)
    multi = labelled_rows("multi")
    assert len(multi) == 30 and multi["score"].isna().all()
    assert metric_on_rows(multi, "accuracy", "multiclass", classes) == 1.0
    assert metric_on_rows(multi, "log_loss", "multiclass", classes) == pytest.approx(-np.log(0.8))
    binary_rows = labelled_rows("bin")
    assert metric_on_rows(binary_rows, "roc_auc", "binary", ["0", "1"]) == 1.0
