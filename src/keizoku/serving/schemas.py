"""Request validation and OpenAPI schemas, both generated from a model's training schema.

Two products of one schema:

* ``RecordValidator``: hand-written checks, one small function per column, compiled once
  per served version. It is what runs on every request (a dynamic pydantic model costs
  several times more per record, see docs/serving.md).
* ``record_model``: a pydantic model made with ``create_model`` (names, types, enums,
  nullability, an example) used only to write the OpenAPI document.

Which fields a record may carry: every *feature* column (required; ``null`` allowed when
the column is nullable), and optionally the schema's id / ignored / sensitive columns and
the deployment's entity id field. Anything else is an unknown field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from keizoku.data.schema import Column, Schema, closest

__all__ = ["FieldError", "RecordValidator", "example_record", "record_model"]

MAX_TEXT = 100_000
FieldError = dict[str, Any]
Check = Callable[[Any], str | None]
MAX_ABS = 1e15  # beyond this a number is garbage, and scaling it can overflow to inf


def _show(value: Any) -> Any:
    """A value as an error message may echo it: short, JSON-safe."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return f"{str(value)[:20]}… ({len(str(value))} digits)"
    if isinstance(value, str) and len(value) > 80:
        return value[:80] + "…"
    if isinstance(value, dict | list):
        return f"<{type(value).__name__} of {len(value)}>"
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(col: Column) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_json_type(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if abs(value) > MAX_ABS:
            return f"number is too large (the limit is ±{MAX_ABS:g})"
        return None

    return check


def _cat_key(value: Any) -> str:
    """Same normalisation as the encoder: 3, 3.0 and '3' meet; True and 'true' meet."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value).strip()


def _category(col: Column) -> Check:
    allowed = {_cat_key(c): c for c in col.categories or []}
    want: tuple[type, ...]
    if col.dtype == "str":
        want, label = (str,), "string"
    elif col.dtype == "bool":
        want, label = (bool,), "boolean"
    else:
        want, label = (int, float), "number"

    def check(value: Any) -> str | None:
        if not isinstance(value, want) or (label == "number" and isinstance(value, bool)):
            return f"expected a {label} (one of the categories), got {_json_type(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if allowed and _cat_key(value) not in allowed:
            return "unseen category"
        return None

    return check


def _text(col: Column) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a string, got {_json_type(value)}"
        if len(value) > MAX_TEXT:
            return f"text longer than {MAX_TEXT} characters"
        return None

    return check


def _datetime(col: Column) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a date/time string (ISO 8601), got {_json_type(value)}"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "expected an ISO 8601 date/time such as '2024-01-31T12:00:00'"
        return None

    return check


def _any_scalar(col: Column) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, dict | list):
            return f"expected a single value, got {_json_type(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if isinstance(value, int | float) and abs(value) > MAX_ABS:
            return f"number is too large (the limit is ±{MAX_ABS:g})"
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return f"text longer than {MAX_TEXT} characters"
        return None

    return check


def _checker(col: Column) -> Check:
    if col.role != "feature":
        return _any_scalar(col)
    if col.kind == "numeric":
        return _number(col)
    if col.kind in ("categorical", "boolean"):
        return _category(col)
    if col.kind == "text":
        return _text(col)
    if col.kind == "datetime":
        return _datetime(col)
    return _any_scalar(col)


def _allowed(col: Column) -> Any:
    """What a column allows, for an error message."""
    if col.role != "feature":
        return "any single value (not used by the model)"
    if col.kind in ("categorical", "boolean") and col.categories:
        return list(col.categories)
    if col.kind == "numeric":
        extra = ""
        if col.min is not None and col.max is not None:
            extra = f" (training range {col.min:g} to {col.max:g})"
        return f"a finite number{extra}" + (" or null" if col.nullable else "")
    if col.kind == "datetime":
        return "an ISO 8601 date/time string"
    return "a string" + (" or null" if col.nullable else "")


class RecordValidator:
    """Checks JSON records against a schema; returns every problem, one per field."""

    def __init__(self, schema: Schema, entity_key: str | None = None) -> None:
        self.schema = schema
        feats = schema.features
        self.required = [c.name for c in feats]
        self.columns = {c.name: c for c in feats}
        for col in schema.columns:
            if col.role in ("id", "ignored", "sensitive") and col.name not in self.columns:
                self.columns[col.name] = col
        self.optional = [n for n in self.columns if n not in set(self.required)]
        self.entity_key = entity_key
        self._checks = {name: _checker(col) for name, col in self.columns.items()}
        self._nullable = {n: (c.nullable or c.role != "feature") for n, c in self.columns.items()}
        self._known = set(self.columns) | ({entity_key} if entity_key else set())
        self._names = list(self._known)

    def errors(self, record: Any, index: int | None = None) -> list[FieldError]:
        """All problems of one record (an empty list when it is valid)."""
        loc: list[Any] = ["body"] if index is None else ["body", index]
        if not isinstance(record, dict):
            return [
                {
                    "loc": loc,
                    "field": None,
                    "value": _show(record),
                    "msg": f"expected a record (JSON object), got {_json_type(record)}",
                    "allowed": {"required": self.required, "optional": self.optional},
                }
            ]
        out: list[FieldError] = []
        checks, nullable = self._checks, self._nullable
        for name, value in record.items():
            check = checks.get(name)
            if check is None:
                if name == self.entity_key:
                    if isinstance(value, dict | list):
                        out.append(self._error(loc, name, value, "expected a single value"))
                    continue
                out.append(self._unknown(loc, name, value))
                continue
            if value is None:
                if not nullable[name]:
                    out.append(self._error(loc, name, value, "null is not allowed"))
                continue
            msg = check(value)
            if msg is not None:
                out.append(self._error(loc, name, value, msg))
        for name in self.required:
            if name not in record:
                out.append(self._error(loc, name, None, "field required", missing=True))
        return out

    def _error(
        self, loc: list[Any], name: str, value: Any, msg: str, *, missing: bool = False
    ) -> FieldError:
        col = self.columns[name] if name in self.columns else None
        err: FieldError = {"loc": [*loc, name], "field": name, "msg": msg}
        if not missing:
            err["value"] = _show(value)
        err["allowed"] = _allowed(col) if col is not None else "any single value"
        return err

    def _unknown(self, loc: list[Any], name: str, value: Any) -> FieldError:
        best = closest(str(name), self._names)
        hint = f"; did you mean '{best}'?" if best else ""
        return {
            "loc": [*loc, name],
            "field": name,
            "value": _show(value),
            "msg": f"unknown field{hint}",
            "allowed": sorted(self._known),
        }


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
        ann: Any = Literal[tuple(col.categories)]  # type: ignore[valid-type]
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
