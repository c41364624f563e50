"""Compaction: the log's many small segments merged into a few large files.

A server flushing every second writes 86,400 segments a day per model; listing and
opening them is most of what ``keizoku monitor`` spends. :func:`compact` (``keizoku log
compact``, and each ``keizoku loop --once``) merges them, per folder (predictions and
feedback of one model), under a lock on the folder, in three steps:

1. **sweep**: every file named in the manifest of a compacted file that is at least
   ``grace_s`` old is deleted (segments first, then replaced compacted files), and
   temporary files a crash left (older than an hour);
2. **plan**: the candidates are the live segments (the reader rule, ``log.live_files``)
   older than ``older_than_s`` and, for predictions, already folded into the bucket
   pre-aggregates (``buckets.catch_up`` runs first), plus compacted files smaller than
   ``target_rows``; taken oldest first, they are grouped into files of about
   ``target_rows`` rows;
3. **write**: each group is read with DuckDB (columns united by name) and written as
   ``cmp-<time_ns>-<host>-<pid>-<random>.parquet`` with the write-fsync-rename of
   ``log.write_segment``; its Parquet metadata ``keizoku.replaces`` lists the names it
   replaces (with those a replaced compacted file still covers on disk). The file
   appears atomically with its manifest.

Why this is safe (decision 25). A reader lists the folder once, drops every name a listed
compacted file replaces and reads the rest: before step 3's rename it sees the segments,
after it the compacted file and not the segments, so every record exactly once. A crash
before the rename leaves a temporary file (swept later) and the segments; after it, the
replaced segments stay on disk, skipped by readers, until a sweep at least ``grace_s``
later deletes them, so a reader that listed just before the rename still finds the files
it listed (a reader slower than ``grace_s`` fails on a missing file; run again, it lists
anew). The bucket pre-aggregates never fold a compacted file: it only holds folded
segments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from keizoku.home import file_lock
from keizoku.monitoring.log import (
    COMPACTED,
    REPLACES,
    live_files,
    log_dir,
    parquet_scan,
    replaced_by,
    write_segment,
)

__all__ = ["CompactResult", "compact", "compact_folder", "plan", "sweep", "write_compacted"]

KINDS = ("predictions", "feedback")
TMP_MAX_AGE_S = 3600.0  # a temporary segment older than this was left by a crash
LOCK = ".compact.lock"


@dataclass
class CompactResult:
    """What one compaction of one folder did."""

    model: str
    kind: str
    files_before: int = 0  # live files (what a reader reads) before
    files_after: int = 0
    replaced: int = 0  # files merged into new compacted files
    rows: int = 0  # rows in the new compacted files
    written: list[str] = field(default_factory=list)
    deleted: int = 0  # replaced files (and crash leftovers) removed by the sweeps
    waiting: int = 0  # old prediction segments left out: not folded into the buckets yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _time_s(path: Path) -> float:
    """When a segment was written: the time in its name, else its modification time."""
    parts = path.name.split("-")
    if len(parts) > 2 and parts[1].isdigit():
        return int(parts[1]) / 1e9
    return path.stat().st_mtime


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def sweep(folder: Path, grace_s: float, now: float | None = None) -> int:
    """Delete the files replaced by a compacted file at least ``grace_s`` old, and crash
    leftovers (temporary files older than an hour); the number deleted."""
    now = time.time() if now is None else now
    if not folder.is_dir():
        return 0
    gone: set[str] = set()
    for path in sorted(folder.glob(f"{COMPACTED}-*.parquet")):
        try:
            if now - _time_s(path) >= grace_s:
                gone |= replaced_by(path)
        except FileNotFoundError:
            continue
    deleted = 0
    for name in sorted(gone, key=lambda n: n.startswith(COMPACTED + "-")):  # segments first
        deleted += _unlink(folder / name)
    for tmp in folder.glob(".*.tmp"):
        try:
            old = now - tmp.stat().st_mtime >= TMP_MAX_AGE_S
        except FileNotFoundError:
            continue
        if old:
            deleted += _unlink(tmp)
    return deleted


def _rows(path: Path) -> int:
    return int(pq.read_metadata(path).num_rows)


def plan(candidates: list[tuple[Path, int]], target_rows: int) -> list[list[Path]]:
    """Groups of consecutive candidates of about ``target_rows`` rows (two files or more)."""
    groups: list[list[Path]] = []
    group: list[Path] = []
    rows = 0
    for path, n in candidates:
        if group and rows + n > target_rows:
            groups.append(group)
            group, rows = [], 0
        group.append(path)
        rows += n
    groups.append(group)
    return [g for g in groups if len(g) > 1]


def write_compacted(folder: Path, group: list[Path]) -> tuple[Path, int]:
    """One compacted file holding the rows of ``group``; (its path, its rows)."""
    from keizoku.monitoring.duck import duckdb_cursor

    names = {p.name for p in group}
    for path in group:  # a replaced compacted file's segments may still be on disk
        names |= {n for n in replaced_by(path) if (folder / n).exists()}
    with duckdb_cursor() as con:
        table = con.sql(f"SELECT * FROM {parquet_scan([str(p) for p in group])}").to_arrow_table()
    meta = dict(table.schema.metadata or {})
    meta[REPLACES] = json.dumps(sorted(names)).encode()
    return write_segment(folder, table.replace_schema_metadata(meta), COMPACTED), table.num_rows


def _candidates(
    files: list[Path], cutoff: float, target_rows: int, folded: set[str] | None
) -> Iterator[tuple[Path, int]]:
    compacted = [p for p in files if p.name.startswith(COMPACTED + "-")]
    segments = sorted((p for p in files if p not in compacted), key=_time_s)
    for path in compacted:
        n = _rows(path)
        if n < target_rows:
            yield path, n
    for path in segments:
        if _time_s(path) < cutoff and (folded is None or path.name in folded):
            yield path, _rows(path)


def compact_folder(
    folder: Path,
    *,
    older_than_s: float,
    target_rows: int,
    grace_s: float,
    folded: set[str] | None = None,
    now: float | None = None,
) -> CompactResult:
    """Sweep, plan and write one folder (see the module docstring); the caller holds the
    folder's lock. ``folded``: the names a prediction segment must be in to be merged."""
    now = time.time() if now is None else now
    result = CompactResult(folder.name, folder.parent.name)
    result.deleted = sweep(folder, grace_s, now)
    files = live_files(folder)
    result.files_before = len(files)
    cutoff = now - older_than_s
    if folded is not None:
        result.waiting = sum(
            1 for p in files
            if not p.name.startswith(COMPACTED + "-") and _time_s(p) < cutoff
            and p.name not in folded
        )  # fmt: skip
    for group in plan(list(_candidates(files, cutoff, target_rows, folded)), target_rows):
        path, rows = write_compacted(folder, group)
        result.written.append(path.name)
        result.replaced += len(group)
        result.rows += rows
    if grace_s <= 0:
        result.deleted += sweep(folder, 0.0, time.time())
    result.files_after = len(live_files(folder))
    return result


def compact(
    model: str,
    *,
    root: Path | None = None,
    older_than_s: float = 3600.0,
    target_rows: int = 1_000_000,
    grace_s: float = 600.0,
    now: float | None = None,
) -> list[CompactResult]:
    """Compact ``model``'s prediction log and feedback (one result per folder)."""
    from keizoku.monitoring import buckets

    out = []
    for kind in KINDS:
        folder = log_dir(model, root, kind)
        if not folder.is_dir():
            out.append(CompactResult(model, kind))
            continue
        with file_lock(folder / LOCK):
            folded = None
            if kind == "predictions":
                buckets.catch_up(model, root)
                folded = buckets.folded_segments(model, root)
            result = compact_folder(
                folder, older_than_s=older_than_s, target_rows=target_rows,
                grace_s=grace_s, folded=folded, now=now,
            )  # fmt: skip
        result.model = model
        out.append(result)
    return out


def models_with_logs(root: Path | None = None) -> list[str]:
    """Every model with a prediction or feedback folder."""
    names: set[str] = set()
    for kind in KINDS:
        parent = log_dir("x", root, kind).parent
        if parent.is_dir():
            names |= {p.name for p in parent.iterdir() if p.is_dir()}
    return sorted(names)
