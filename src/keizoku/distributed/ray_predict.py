"""Scoring a large Parquet file or folder with Ray Data (``keizoku predict --ray``).

The model is loaded and hash-verified on the driver, as for a local ``predict``, and
shipped to the workers once; each Parquet block is checked by the server's record
validator and scored there, in parallel. The driver *streams* the scored blocks, in file
order, into the output file (a Parquet writer, or CSV appended block by block) under a
temporary name beside it, renamed into place at the end: its memory holds a few blocks,
never the dataset. The rows, their order, the columns and their types are those a local
``predict`` writes for the same file (decision 0023, s7 section).

The read is planned from the Parquet footers the driver reads anyway (row counts, null
counts): runs of row groups, each one Ray Data read task fused with the scoring, so a
small input is one task in one worker process. ``ray.data.read_parquet`` would start a
listing task and a pool of footer-reading actors first, each a worker process of the
job (decision 0023, s15 section).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from keizoku.data.validate import validate_frame
from keizoku.distributed.cluster import connect
from keizoku.errors import DataError, KeizokuError, UserInputError
from keizoku.home import atomic_path

__all__ = ["PREFETCH", "score_parquet"]

PREFETCH = 1  # scored blocks the driver holds ahead of the one it writes


@dataclass(frozen=True)
class RowGroup:
    """One row group of an input file, as its footer describes it."""

    path: str
    index: int
    rows: int
    size: int  # bytes, uncompressed (the footer's total_byte_size)


def score_parquet(
    address: str,
    model: Any,
    data: str,
    out: str,
    batch_size: int,
    allow_unseen: bool,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Score ``data`` (a .parquet file or a folder of them) on the cluster into ``out``
    (.parquet/.pq or .csv, written atomically); the number of rows written."""
    path = _parquet_input(data)
    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserInputError(f"Output '{out}' must end in .csv or .parquet.")
    source = pads.dataset(str(path.resolve()), format="parquet")
    footers = [(f.path, f.metadata) for f in source.get_fragments()]
    groups = row_groups(footers)
    total = sum(g.rows for g in groups)
    source_schema = source.schema
    floats = _ints_with_nulls(source, footers)
    ray = connect(address)
    ctx = ray.data.DataContext.get_current()
    # No progress lines on stderr, nor Ray's own report of a failed block: a worker's
    # DataError (a bad row) is raised as it is, not as Ray's UserCodeException, and the
    # CLI reports it in one line.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    ctx.raise_original_map_exception = True
    ctx.execution_options.preserve_order = True  # rows out in the order they were read
    ctx.enable_progress_bars = False

    def score(batch: pa.Table) -> pa.Table:
        frame = validate_frame(model.schema, as_pandas(batch, floats), allow_unseen=allow_unseen)
        return pa.Table.from_pandas(model.score_frame(frame), preserve_index=False)

    blocks = _scored_blocks(ray, groups, source_schema, batch_size, score)
    written = 0
    try:
        with atomic_path(out) as tmp, _writer(tmp, suffix, source_schema) as write:
            for block in blocks:
                written += write(block)
                if on_batch is not None:
                    on_batch(written, total)
            if written != total:  # before the rename: a short file is never the output
                raise DataError(f"Scored {written} rows of {total}: nothing was written.")
    except Exception as exc:  # a worker's DataError (a bad row) comes back wrapped
        cause = _keizoku_cause(exc)
        if cause is not None:
            raise cause from None
        raise
    return written


def _scored_blocks(
    ray: Any,
    groups: list[RowGroup],
    schema: pa.Schema,
    batch_size: int,
    score: Callable[[pa.Table], pa.Table],
) -> Iterator[pa.Table]:
    """The scored blocks, in file order: ``read_tasks`` tasks, each reading its run of row
    groups in blocks of ``batch_size`` rows and scoring them (one fused Ray Data task)."""
    ctx = ray.data.DataContext.get_current()
    most = max(ctx.read_op_min_num_blocks, 2 * int(ray.cluster_resources().get("CPU", 1)))
    tasks = read_tasks(groups, ctx.target_min_block_size, most)
    source = ray.data.read_datasource(
        _row_group_source(ray, groups, schema, batch_size), override_num_blocks=tasks
    )
    # The read blocks are batches already: with a batch_size here Ray Data would not fuse
    # the scoring into the read task (a map task of its own, often in another process).
    scored = source.map_batches(score, batch_format="pyarrow", batch_size=None)
    blocks: Iterator[pa.Table] = scored.iter_batches(
        batch_size=None, batch_format="pyarrow", prefetch_batches=PREFETCH
    )
    return blocks


def _parquet_input(data: str) -> Path:
    path = Path(data)
    if not (path.is_dir() or path.suffix.lower() in (".parquet", ".pq")):
        raise UserInputError(
            f"predict --ray reads Parquet: '{data}' is neither a .parquet file nor a folder "
            "of them. Convert it (pandas: read_csv(...).to_parquet(...)) or drop --ray."
        )
    if not path.exists():
        raise UserInputError(f"Data file '{data}' does not exist. Check the path.")
    return path


def row_groups(footers: list[tuple[str, pq.FileMetaData]]) -> list[RowGroup]:
    """Every row group of the input, in file order, from the files' footers."""
    return [
        RowGroup(path, g, meta.row_group(g).num_rows, meta.row_group(g).total_byte_size)
        for path, meta in footers
        for g in range(meta.num_row_groups)
    ]


def read_tasks(groups: list[RowGroup], min_bytes: int, most: int) -> int:
    """How many read tasks: one per ``min_bytes`` of input (Ray Data's smallest block),
    at most one per row group and at most ``most``, at least one.

    Chosen here, not by Ray Data: it asks for two blocks per CPU even for a small input
    and, when the read gives fewer, splits their output, which keeps the scoring out of
    the read task.
    """
    size = sum(g.size for g in groups)
    return max(1, min(len(groups), most, -(-size // max(1, min_bytes))))


def read_runs(groups: list[RowGroup], parallelism: int) -> list[list[RowGroup]]:
    """``groups`` cut into at most ``parallelism`` contiguous runs of near-equal length:
    one Ray Data read task each, in file order."""
    n = max(1, min(parallelism, len(groups)))
    each, extra = divmod(len(groups), n)
    runs, start = [], 0
    for i in range(n):
        end = start + each + (i < extra)
        runs.append(groups[start:end])
        start = end
    return runs


def _read_run(run: list[RowGroup], rows: int) -> Iterator[pa.Table]:
    """A read task on a worker: its row groups in order, in blocks of ``rows`` rows."""
    for path, in_file in groupby(run, key=lambda g: g.path):
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(rows, row_groups=[g.index for g in in_file]):
            yield pa.Table.from_batches([batch])


def _row_group_source(ray: Any, groups: list[RowGroup], schema: pa.Schema, rows: int) -> Any:
    """A Ray Data datasource reading ``groups`` in ``read_runs`` (Ray chooses how many
    from their size and the cluster's CPUs: one for a small input)."""
    metadata = ray.data.block.BlockMetadata

    class RowGroups(ray.data.Datasource):  # type: ignore[misc]
        def get_name(self) -> str:
            return "ParquetRowGroups"

        def estimate_inmemory_data_size(self) -> int:
            return sum(g.size for g in groups)

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            return [
                ray.data.ReadTask(
                    partial(_read_run, run, rows),
                    metadata(
                        num_rows=sum(g.rows for g in run),
                        size_bytes=sum(g.size for g in run),
                        exec_stats=None,
                        input_files=tuple(dict.fromkeys(g.path for g in run)),
                    ),
                    schema=schema,
                    per_task_row_limit=per_task_row_limit,
                )
                for run in read_runs(groups, parallelism)
            ]

    return RowGroups()


def _ints_with_nulls(
    source: pads.Dataset, footers: list[tuple[str, pq.FileMetaData]]
) -> frozenset[str]:
    """The integer columns that hold a null anywhere in ``source`` (its files' ``footers``).

    ``pandas.read_parquet`` of the whole file makes such a column float64, while a block
    without a null stays int64; the workers make it float64 in every block, so each block
    has the types a local ``predict`` gives. Read from the files' statistics; a column
    without them is scanned (that column only, block by block).
    """
    ints = [f.name for f in source.schema if pa.types.is_integer(f.type)]
    counts: dict[str, int | None] = dict.fromkeys(ints, 0)
    for _, meta in footers:
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for name in ints:
            found = _null_count(meta, names.index(name)) if name in names else 0
            before = counts[name]
            counts[name] = None if before is None or found is None else before + found
    for name, count in counts.items():
        if count is None:  # no statistics: count this column's nulls, block by block
            counts[name] = sum(b.column(0).null_count for b in source.to_batches(columns=[name]))
    return frozenset(name for name, count in counts.items() if count)


def _null_count(meta: pq.FileMetaData, index: int) -> int | None:
    """Nulls in column ``index`` of one Parquet file, from its statistics (None: not kept)."""
    total = 0
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def as_pandas(table: pa.Table, floats: frozenset[str] = frozenset()) -> pd.DataFrame:
    """``table`` as ``pandas.read_parquet`` gives it (the dtypes of a local ``predict``);
    the NumPy integer columns in ``floats`` as float64, as a read of the whole file gives
    them when it holds a null there."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    buf.seek(0)
    frame = pd.read_parquet(buf)
    for name in floats & set(frame.columns):
        if isinstance(frame[name].dtype, np.dtype):  # not pandas' own Int64 (kept as is)
            frame[name] = frame[name].astype("float64")
    return frame


@contextmanager
def _writer(tmp: Path, suffix: str, source: pa.Schema) -> Iterator[Callable[[pa.Table], int]]:
    """``write(block)`` appending scored blocks to ``tmp``; each block is cast to the first
    block's schema (a column that is all null in the first block takes the input's type)."""
    state: dict[str, Any] = {}

    def write(block: pa.Table) -> int:
        if "schema" not in state:
            state["schema"] = _settled(block.schema, source)
            if suffix != ".csv":
                state["parquet"] = pq.ParquetWriter(tmp, state["schema"])
            else:
                tmp.write_bytes(b"")
        table = _cast(block, state["schema"])
        if suffix == ".csv":
            with open(tmp, "a", encoding="utf-8", newline="") as fh:
                as_pandas(table).to_csv(fh, index=False, header=not state.get("rows"))
        else:
            state["parquet"].write_table(table)
        rows: int = table.num_rows
        state["rows"] = state.get("rows", 0) + rows
        return rows

    try:
        yield write
    finally:
        if "parquet" in state:
            state["parquet"].close()
    if "schema" not in state:  # no block at all: an empty input
        raise DataError("The input has no rows: nothing was written.")


def _settled(schema: pa.Schema, source: pa.Schema) -> pa.Schema:
    """``schema`` with each all-null (``null``-typed) column given the input's type."""
    fields = []
    for f in schema:
        i = source.get_field_index(f.name)
        if pa.types.is_null(f.type) and i >= 0:
            f = f.with_type(source.field(i).type)
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _cast(block: pa.Table, schema: pa.Schema) -> pa.Table:
    if block.schema.equals(schema, check_metadata=False):
        return block.replace_schema_metadata(schema.metadata)
    if block.schema.names != schema.names:
        raise DataError(
            f"A block scored with columns {block.schema.names}, unlike the first block's "
            f"{schema.names}: the input's files differ in their columns. Give files with "
            "the same columns."
        )
    try:
        return block.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"A block's column types differ from the first block's and cannot be converted "
            f"({str(exc).splitlines()[0][:160]}). Give files whose columns have one type each."
        ) from None


def _keizoku_cause(exc: BaseException | None) -> KeizokuError | None:
    """The KeizokuError a remote failure carries (Ray wraps it once or twice), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeizokuError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None
