"""Data: read a source, infer and validate its schema, profile it."""

from keizoku.data.ingest import ReadOptions, read_table
from keizoku.data.schema import Column, Schema, infer_schema

__all__ = ["Column", "ReadOptions", "Schema", "infer_schema", "read_table"]
