"""OpenAPI schemas of a served model, generated from its training schema.

``record_model`` is a pydantic model made with ``create_model`` (names, types, enums,
nullability, an example) used only to write the OpenAPI document. Requests are checked by
``keizoku.data.validate.RecordValidator`` (re-exported here): the one record validator of
every path (a dynamic pydantic model costs several times more per record, see
docs/serving.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from keizoku.data.schema import Column, Schema
from keizoku.data.validate import MAX_TEXT, FieldError, RecordValidator

__all__ = ["ExplainRequest", "FieldError", "RecordValidator", "example_record", "record_model"]


# ------------------------------------------------------------------ OpenAPI models


def _example_value(col: Column) -> Any:
    if col.categories:
        return col.categories[0]
    if col.kind == "numeric":
        if col.min is not None and col.max is not None:
            mid = (col.min + col.max) / 2
            return int(round(mid)) if col.dtype == "int" else round(mid, 4)
        return 0
    if col.kind == "datetime":
        return "2024-01-31T12:00:00"
    if col.kind == "boolean":
        return True
    return "text"


def example_record(schema: Schema) -> dict[str, Any]:
    """An example request built from the schema (no training data is kept)."""
    return {c.name: _example_value(c) for c in schema.features}


def _annotation(col: Column) -> Any:
    if col.kind in ("categorical", "boolean") and col.categories:
        ann: Any = Literal[tuple(col.categories)]
    elif col.kind == "numeric":
        ann = float  # JSON numbers; an int column accepts 3 and 3.0 alike
    elif col.kind == "boolean":
        ann = bool
    else:
        ann = str
    return ann | None if col.nullable else ann


def _field(col: Column) -> tuple[Any, Any]:
    desc = f"{col.kind} feature"
    if col.min is not None and col.max is not None and col.kind == "numeric":
        desc += f"; training range {col.min:g} to {col.max:g}"
    if col.note:
        desc += f" ({col.note})"
    kwargs: dict[str, Any] = {"description": desc, "examples": [_example_value(col)]}
    if col.kind == "text":
        kwargs["max_length"] = MAX_TEXT
    return _annotation(col), Field(..., **kwargs)


def _model_id(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name)
    return "".join(p[:1].upper() + p[1:] for p in cleaned.split("_") if p) or "Model"


def record_model(name: str, schema: Schema, entity_key: str | None = None) -> type[BaseModel]:
    """A pydantic model of one request record (OpenAPI only; validation uses RecordValidator)."""
    fields: dict[str, Any] = {c.name: _field(c) for c in schema.features}
    for col in schema.columns:
        if col.role in ("id", "ignored", "sensitive") and col.name not in fields:
            fields[col.name] = (
                str | int | float | bool | None,
                Field(None, description=f"{col.role} column, not used by the model"),
            )
    if entity_key and entity_key not in fields:
        fields[entity_key] = (
            str | int | None,
            Field(None, description="entity id: echoed back, used for sticky routing"),
        )
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [example_record(schema)]})
    return create_model(f"{_model_id(name)}Record", __config__=config, **fields)


# ------------------------------------------------------------------ request bodies


class ExplainRequest(BaseModel):
    """Body of ``POST /v1/models/{name}/explain``."""

    model_config = ConfigDict(extra="forbid")

    row: dict[str, Any] = Field(description="One record: column → value, as for predictions.")
    top: int = Field(default=10, ge=1, le=200, description="How many contributions to return.")
