"""Check a frame against a schema before scoring: missing columns, wrong types."""

from __future__ import annotations

import warnings

import pandas as pd

from keizoku.data.schema import Schema
from keizoku.errors import DataError, KeizokuWarning

__all__ = ["validate_frame"]


def validate_frame(schema: Schema, frame: pd.DataFrame) -> pd.DataFrame:
    """Raise naming missing columns or non-numeric values; warn about unknown columns."""
    schema.check_frame(frame)
    known = set(schema.names)
    extra = [c for c in frame.columns if c not in known]
    if extra:
        warnings.warn(
            f"Column(s) {extra} were not in the training data; they are passed through "
            "and not used by the model.",
            KeizokuWarning,
            stacklevel=2,
        )
    for col in schema.features:
        if col.kind != "numeric" or pd.api.types.is_numeric_dtype(frame[col.name]):
            continue
        values = frame[col.name]
        coerced = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & coerced.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"Column '{col.name}' must be numeric, but row {row} holds {values.iloc[row]!r}. "
                "Clean the value, or mark the token as missing with --na-values.",
                details={"column": col.name, "row": row, "value": str(values.iloc[row])},
            )
    return frame
