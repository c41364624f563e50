"""Data: read a source, infer and validate its schema, profile it.

The names below load on first use, so that a submodule read on its own (the label
spelling of ``keizoku.data.labels``, imported by the prediction log and every process that
compacts or folds it) does not import pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keizoku._lazy import lazy_names

if TYPE_CHECKING:
    from keizoku.data.ingest import ReadOptions, read_table
    from keizoku.data.schema import Column, Schema, infer_schema

__all__ = ["Column", "ReadOptions", "Schema", "infer_schema", "read_table"]

_LAZY = {
    "ReadOptions": "keizoku.data.ingest",
    "read_table": "keizoku.data.ingest",
    "Column": "keizoku.data.schema",
    "Schema": "keizoku.data.schema",
    "infer_schema": "keizoku.data.schema",
}

__getattr__ = lazy_names(__name__, _LAZY)
