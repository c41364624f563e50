"""Log compaction: readers see every record exactly once at every step, a crash at any
step loses and duplicates nothing, the bucket pre-aggregates never fold a row twice
(real Parquet files, real DuckDB, real processes killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keizoku.monitoring import buckets
from keizoku.monitoring.compact import compact, compact_folder, plan, sweep, write_compacted
from keizoku.monitoring.log import (
    PredictionLog,
    live_files,
    log_dir,
    parquet_scan,
    replaced_by,
    segment_files,
    write_segment,
)
from keizoku.prediction import Prediction
from kzsupport import KEIZOKU_EXE

MODEL = "m"


def _segments(root: Path, n_segments: int, rows: int, start: int = 0) -> set[str]:
    """``n_segments`` prediction segments written by a real PredictionLog; their ids."""
    ids: set[str] = set()
    log = PredictionLog(root=root, flush_interval_s=3600)
    for s in range(n_segments):
        for r in range(rows):
            i = start + s * rows + r
            rid = f"r{i}"
            ids.add(rid)
            pred = Prediction("yes", {"no": 0.2, "yes": 0.8}, 0.8, 1, "champion", rid, None)
            log.append(pred, ts=1_700_000_000.0 + i, model=MODEL, inputs={"x": float(i)},
                       latency_ms=float(i % 7), types={"x": pa.float64()})  # fmt: skip
        log.flush()
    log.close()
    return ids


def _seen(root: Path, kind: str = "predictions") -> list[str]:
    """The request ids a reader sees now (the reader rule: list once, read the rest)."""
    files = segment_files(MODEL, root, kind)
    if not files:
        return []
    sql = f"SELECT request_id FROM {parquet_scan(files)}"
    return [r[0] for r in duckdb.connect().execute(sql).fetchall()]


def _folded_rows(root: Path) -> int:
    return sum(p.n for p in buckets.traffic_series(MODEL, buckets.HOUR, 0.0, root))


def _on_disk(root: Path, kind: str = "predictions") -> list[str]:
    return sorted(p.name for p in log_dir(MODEL, root, kind).glob("*.parquet"))


def test_compaction_merges_segments_into_files_of_the_target_size(tmp_path: Path) -> None:
    ids = _segments(tmp_path, 50, 10)
    buckets.wait_folded(timeout=60)
    assert len(_on_disk(tmp_path)) == 50
    [pred, fb] = compact(MODEL, root=tmp_path, older_than_s=0, target_rows=200, grace_s=0)
    assert (pred.files_before, pred.replaced, pred.rows) == (50, 50, 500)
    assert len(pred.written) == 3 and pred.deleted == 50 and pred.files_after == 3
    assert fb.files_before == 0 and fb.written == []
    assert all(name.startswith("cmp-") for name in _on_disk(tmp_path))
    sizes = sorted(pq.read_metadata(log_dir(MODEL, tmp_path) / n).num_rows
                   for n in _on_disk(tmp_path))  # fmt: skip
    assert sizes == [100, 200, 200]
    seen = _seen(tmp_path)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert buckets.catch_up(MODEL, tmp_path) == 0  # a compacted file is never folded
    assert _folded_rows(tmp_path) == 500
    # columns and types survive: the drift aggregates still run in SQL
    table = pq.read_table(log_dir(MODEL, tmp_path) / _on_disk(tmp_path)[0])
    assert table.schema.field("f__x").type == pa.float64()
    assert table.schema.field("version").type == pa.int64()


def test_small_compacted_files_are_merged_again_and_the_manifest_covers_their_sources(
    tmp_path: Path,
) -> None:
    ids = _segments(tmp_path, 6, 5)
    buckets.wait_folded(timeout=60)
    first = compact(MODEL, root=tmp_path, older_than_s=0, target_rows=1000, grace_s=600)[0]
    assert first.replaced == 6 and first.deleted == 0  # sources kept for the grace period
    ids |= _segments(tmp_path, 4, 5, start=1000)
    buckets.wait_folded(timeout=60)
    second = compact(MODEL, root=tmp_path, older_than_s=0, target_rows=1000, grace_s=600)[0]
    assert second.replaced == 5  # the small compacted file and the 4 new segments
    [newest] = second.written
    covered = replaced_by(log_dir(MODEL, tmp_path) / newest)
    assert len(covered) == 11  # 4 segments, the first compacted file and its 6 segments
    seen = _seen(tmp_path)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert len(_on_disk(tmp_path)) == 12  # nothing deleted before the grace period
    assert sweep(log_dir(MODEL, tmp_path), 600, now=time.time() + 601) == 11
    assert _on_disk(tmp_path) == [newest]
    assert sorted(_seen(tmp_path)) == sorted(ids)
    assert _folded_rows(tmp_path) == 50


def test_a_crash_after_each_step_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """The steps of compact_folder, stopped after each one (what a crash leaves on disk),
    then the readers, the bucket catch-up and a fresh compaction."""
    ids = _segments(tmp_path, 8, 5)
    buckets.wait_folded(timeout=60)
    folder = log_dir(MODEL, tmp_path)

    def check() -> None:
        seen = _seen(tmp_path)
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        buckets.catch_up(MODEL, tmp_path)
        assert _folded_rows(tmp_path) == 40

    # 1. crash while writing the compacted file: a temporary file, never read
    tmp = folder / ".cmp-00000000000000000001-host-1-deadbeef.parquet.tmp"
    tmp.write_bytes(b"PAR1 half a file")
    check()
    os.utime(tmp, (time.time() - 7200, time.time() - 7200))  # older than an hour: swept
    assert sweep(folder, 600) == 1 and not tmp.exists()
    # 2. crash after the rename, before any delete: both on disk, each record once
    [group] = plan([(p, 5) for p in live_files(folder)], 1000)
    written, rows = write_compacted(folder, group)
    assert rows == 40 and len(_on_disk(tmp_path)) == 9
    check()
    # 3. crash in the middle of the sweep: some replaced segments deleted, not all
    for path in group[:3]:
        path.unlink()
    check()
    # 4. the next run finishes the job
    result = compact_folder(folder, older_than_s=0, target_rows=1000, grace_s=0,
                            folded=buckets.folded_segments(MODEL, tmp_path))  # fmt: skip
    assert result.deleted == 5 and result.written == []
    assert _on_disk(tmp_path) == [written.name]
    check()


def test_only_folded_segments_are_compacted(tmp_path: Path) -> None:
    """A segment the buckets have not folded stays out of compaction (folding it later
    from a compacted file would need to know which rows it held)."""
    _segments(tmp_path, 4, 5)
    buckets.wait_folded(timeout=60)
    folder = log_dir(MODEL, tmp_path)
    table = pq.read_table(next(folder.glob("seg-*.parquet")))
    other_ids = pa.array([f"s{i}" for i in range(5)])
    stray = write_segment(folder, table.set_column(0, "request_id", other_ids))
    folded = buckets.folded_segments(MODEL, tmp_path)
    assert stray.name not in folded
    result = compact_folder(folder, older_than_s=0, target_rows=1000, grace_s=0, folded=folded)
    assert result.replaced == 4 and result.waiting == 1 and stray.exists()
    assert buckets.catch_up(MODEL, tmp_path) == 1  # the stray segment, once
    assert _folded_rows(tmp_path) == 25


def test_readers_see_every_record_once_while_compaction_runs(tmp_path: Path) -> None:
    ids = _segments(tmp_path, 60, 3)
    buckets.wait_folded(timeout=60)
    stop = threading.Event()
    seen_counts: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def read() -> None:
        con = duckdb.connect()
        while not stop.is_set():
            files = segment_files(MODEL, tmp_path)
            try:
                n, distinct = con.execute(
                    f"SELECT count(*), count(DISTINCT request_id) FROM {parquet_scan(files)}"
                ).fetchone()  # type: ignore[misc]
            except duckdb.IOException as exc:  # a file deleted after the listing: list again
                vanished = ("no such file", "not found", "no files found")
                if not any(m in str(exc).lower() for m in vanished):
                    errors.append(exc)
                continue
            seen_counts.append((n, distinct))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for target in (10, 20, 45, 90, 200):  # each round merges the previous round's files
            compact(MODEL, root=tmp_path, older_than_s=0, target_rows=target, grace_s=0)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors
    assert seen_counts and set(seen_counts) == {(len(ids), len(ids))}
    assert len(_on_disk(tmp_path)) == 1
    assert _folded_rows(tmp_path) == len(ids)


def test_compaction_while_the_server_log_writes(tmp_path: Path) -> None:
    """The writing log and compaction at once: every acknowledged record once, folded once."""
    log = PredictionLog(root=tmp_path, flush_interval_s=0.05)
    written: list[str] = []

    def write() -> None:
        for i in range(400):
            rid = f"w{i}"
            pred = Prediction("no", {"no": 0.9, "yes": 0.1}, 0.1, 1, "champion", rid, None)
            log.append(pred, ts=1_700_000_000.0 + i, model=MODEL, inputs={"x": 1.0},
                       latency_ms=1.0)  # fmt: skip
            written.append(rid)
            time.sleep(0.003)

    writer = threading.Thread(target=write)
    writer.start()
    rounds = 0
    try:
        while writer.is_alive() or rounds < 2:
            compact(MODEL, root=tmp_path, older_than_s=0, target_rows=10_000, grace_s=0)
            rounds += 1
    finally:
        writer.join(timeout=60)
        log.close()
    compact(MODEL, root=tmp_path, older_than_s=0, target_rows=10_000, grace_s=0)
    seen = _seen(tmp_path)
    assert len(written) == 400
    assert sorted(seen) == sorted(written) and len(seen) == len(set(seen))
    buckets.catch_up(MODEL, tmp_path)
    assert _folded_rows(tmp_path) == len(written)


_KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from keizoku.monitoring.compact import compact
    root = Path(sys.argv[1])
    print("ready", flush=True)
    for target in (4, 8, 16, 32, 64, 10_000):
        compact("m", root=root, older_than_s=0, target_rows=target, grace_s=0)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("when", ["ready", "0.05", "0.2", "first-file", "second-file"])
def test_a_compaction_killed_at_any_moment_loses_and_duplicates_nothing(
    tmp_path: Path, when: str
) -> None:
    """SIGKILL a real compaction process (rounds of ever larger files, deleting at once)
    right after it started, after a delay, or as soon as its first or second compacted file
    appears; then read, catch up the buckets and compact again: every record once, folded
    once."""
    ids = _segments(tmp_path, 40, 2)
    buckets.wait_folded(timeout=60)
    folder = log_dir(MODEL, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    if when.endswith("-file"):
        need = 1 if when == "first-file" else 2
        made: set[str] = set()
        while proc.poll() is None and len(made) < need:
            made |= {p.name for p in folder.glob("cmp-*.parquet")}
    elif when != "ready":
        time.sleep(float(when))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    seen = _seen(tmp_path)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    buckets.catch_up(MODEL, tmp_path)
    assert _folded_rows(tmp_path) == len(ids)
    compact(MODEL, root=tmp_path, older_than_s=0, target_rows=10_000, grace_s=0)
    assert sorted(_seen(tmp_path)) == sorted(ids)
    assert len(_on_disk(tmp_path)) == 1


def test_feedback_segments_are_compacted_the_same_way(tmp_path: Path) -> None:
    folder = log_dir(MODEL, tmp_path, "feedback")
    for i in range(12):
        write_segment(folder, pa.table({"request_id": [f"r{i}"], "label": ["yes"],
                                        "label_num": [1.0], "ts": [1.0 * i],
                                        "received_ts": [2.0 * i]}), prefix="fb")  # fmt: skip
    [_, fb] = compact(MODEL, root=tmp_path, older_than_s=0, target_rows=100, grace_s=0)
    assert (fb.kind, fb.replaced, fb.rows, fb.files_after) == ("feedback", 12, 12, 1)
    seen = _seen(tmp_path, "feedback")
    assert sorted(seen) == sorted(f"r{i}" for i in range(12))
    sql = f"SELECT sum(received_ts) FROM {parquet_scan(segment_files(MODEL, tmp_path, 'feedback'))}"
    assert duckdb.connect().execute(sql).fetchone() == (132.0,)


def test_recent_segments_wait_for_older_than(tmp_path: Path) -> None:
    _segments(tmp_path, 5, 2)
    buckets.wait_folded(timeout=60)
    [pred, _] = compact(MODEL, root=tmp_path, older_than_s=3600, target_rows=100, grace_s=0)
    assert pred.replaced == 0 and len(_on_disk(tmp_path)) == 5


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEIZOKU_LOG_ROOT", None)
    return subprocess.run([KEIZOKU_EXE, *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_cli_compacts_with_json_and_refuses_bad_values(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ids = _segments(home, 10, 3)
    buckets.wait_folded(timeout=60)
    out = _cli(home, "log", "compact", MODEL, "--older-than", "0s", "--grace", "0s", "--json")
    assert out.returncode == 0, out.stderr
    [pred, fb] = json.loads(out.stdout)["results"]
    assert (pred["kind"], pred["replaced"], pred["rows"], pred["files_after"]) == (
        "predictions", 10, 30, 1)  # fmt: skip
    assert fb["kind"] == "feedback" and fb["replaced"] == 0
    assert sorted(_seen(home)) == sorted(ids)
    table = _cli(home, "log", "compact")  # every logged model, people's table
    assert table.returncode == 0 and "Log compaction" in table.stdout
    for args, word in (
        (["--target-rows", "0"], "--target-rows"),
        (["--older-than", "soon"], "--older-than"),
        (["--grace", "-1"], "--grace"),
    ):
        bad = _cli(home, "log", "compact", MODEL, *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert word in bad.stderr
    bad = _cli(home, "log", "compact", "../etc")
    assert bad.returncode == 2 and "Model name" in bad.stderr


def test_each_loop_tick_compacts_with_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's step: segments younger than an hour wait; replaced files go a grace
    period (10 min) after their compacted file was written."""
    from keizoku.lifecycle.loop import compact_step

    monkeypatch.setenv("KEIZOKU_LOG_ROOT", str(tmp_path))
    ids = _segments(tmp_path, 12, 4)
    buckets.wait_folded(timeout=60)
    assert compact_step(MODEL) == []
    hours_later = time.time() + 7200
    assert compact_step(MODEL, now=hours_later) == [
        "predictions: 12 files merged into 1, 0 deleted"
    ]
    assert sorted(_seen(tmp_path)) == sorted(ids) and len(_on_disk(tmp_path)) == 13
    assert compact_step(MODEL, now=hours_later + 601) == [
        "predictions: 0 files merged into 0, 12 deleted"
    ]
    assert len(_on_disk(tmp_path)) == 1 and sorted(_seen(tmp_path)) == sorted(ids)
    assert _folded_rows(tmp_path) == len(ids)
