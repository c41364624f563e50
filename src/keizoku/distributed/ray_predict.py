"""Scoring a large Parquet file or folder with Ray Data (``keizoku predict --ray``).

The model is loaded and hash-verified on the driver, as for a local ``predict``, and
shipped to the workers once; each Parquet block is checked by the server's record
validator and scored there, in parallel. Blocks come back in file order, so the rows
written are those a local ``predict`` writes, in the same order.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from keizoku.data.validate import validate_frame
from keizoku.distributed.cluster import connect
from keizoku.errors import KeizokuError, UserInputError

__all__ = ["score_parquet"]


def score_parquet(
    address: str, model: Any, data: str, batch_size: int, allow_unseen: bool
) -> pd.DataFrame:
    """``data`` (a .parquet file or a folder of them) scored by ``model`` on the cluster."""
    path = Path(data)
    if not (path.is_dir() or path.suffix.lower() in (".parquet", ".pq")):
        raise UserInputError(
            f"predict --ray reads Parquet: '{data}' is neither a .parquet file nor a folder "
            "of them. Convert it (pandas: read_csv(...).to_parquet(...)) or drop --ray."
        )
    ray = connect(address)
    ctx = ray.data.DataContext.get_current()
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no progress lines on stderr
    ctx.execution_options.preserve_order = True  # rows out in the order they were read
    ctx.enable_progress_bars = False

    def score(batch: pa.Table) -> pa.Table:
        frame = validate_frame(model.schema, as_pandas(batch), allow_unseen=allow_unseen)
        return pa.Table.from_pandas(model.score_frame(frame), preserve_index=False)

    try:
        ds = ray.data.read_parquet(str(path.resolve()))
        parts = ds.map_batches(score, batch_format="pyarrow", batch_size=batch_size)
        tables = [ray.get(ref) for ref in parts.to_arrow_refs()]
    except Exception as exc:  # a worker's DataError (a bad row) comes back wrapped
        cause = _keizoku_cause(exc)
        if cause is not None:
            raise cause from None
        raise
    return as_pandas(pa.concat_tables(tables, promote_options="default"))


def as_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as ``pandas.read_parquet`` gives it (the dtypes of a local ``predict``)."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    buf.seek(0)
    return pd.read_parquet(buf)


def _keizoku_cause(exc: BaseException | None) -> KeizokuError | None:
    """The KeizokuError a remote failure carries (Ray wraps it once or twice), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeizokuError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None
