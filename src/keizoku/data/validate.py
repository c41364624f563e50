"""The one record validator: every path that scores or explains records checks them here.

``/predict``, ``/explain``, feedback records that carry inputs, ``keizoku predict FILE``
(``predict_file``) and ``keizoku explain --row`` all go through ``RecordValidator``: one
small check per column, compiled once per schema. A JSON record is checked as it is (no
coercion: ``"22"`` is a string, not a number); a file's cells are first typed the way the
file reader types them (CSV cells are text: a numeric column's text that parses as a number
becomes that number), then each distinct value goes through the same checks.

Policy (docs/serving.md, "Validation"): a wrong type, an unknown field or a value out of
bounds is always an error. An unseen category, a missing feature or a null where training
had none is an error too, unless the caller asks to score anyway (``allow_unseen``: REST
``?allow_unseen=true``, CLI ``--allow-unseen``); then it is scored as missing/unknown and
the answer carries a warning with the count of each kind.

Which fields a record may carry: every *feature* column (required; ``null`` allowed when
the column is nullable), and optionally the schema's id / ignored / sensitive columns and
the deployment's entity id field. Anything else is an unknown field.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.labels import canonical
from keizoku.data.schema import Column, Schema
from keizoku.errors import DataError, KeizokuWarning, SchemaMismatchError, ValidationError
from keizoku.names import closest

__all__ = [
    "ANY_FIX",
    "MAX_TEXT",
    "MISSING",
    "TYPE",
    "UNKNOWN",
    "UNSEEN",
    "Checked",
    "FieldError",
    "RecordValidator",
    "check_records",
    "validate_frame",
]

TYPE, UNKNOWN, UNSEEN, MISSING = "type", "unknown", "unseen", "missing"
LENIENT = frozenset({UNSEEN, MISSING})  # what ``allow_unseen`` turns into warnings
UNSEEN_MSG = "unseen category"
ANY_FIX = (
    "Send the value the schema allows; to score unseen categories and missing fields anyway, "
    "pass --allow-unseen (CLI) or ?allow_unseen=true (REST)."
)
REST_FIX = (
    "See 'details'; the schema is at /openapi.json. To score unseen categories and missing "
    "fields anyway, add ?allow_unseen=true."
)
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


def _category(col: Column) -> Check:
    allowed = {canonical(c): c for c in col.categories or []}
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
        if allowed and canonical(value) not in allowed:
            return UNSEEN_MSG
        return None

    return check


def _text(col: Column) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a string, got {_json_type(value)}"
        if len(value) > MAX_TEXT:
            return f"text longer than {MAX_TEXT} characters"
        if not value.strip():  # nothing to tokenise: send words, or null (docs/text.md)
            return "empty text: send at least one word" + (", or null" if col.nullable else "")
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
                    "kind": TYPE,
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
            if isinstance(value, np.generic):  # a library caller's numpy scalar
                value = value.item()
            if value is None or value != value:  # NaN (pandas' missing value) is null
                if not nullable[name]:
                    out.append(self._error(loc, name, value, "null is not allowed", kind=MISSING))
                continue
            msg = check(value)
            if msg is not None:
                kind = UNSEEN if msg == UNSEEN_MSG else TYPE
                out.append(self._error(loc, name, value, msg, kind=kind))
        for name in self.required:
            if name not in record:
                out.append(self._error(loc, name, None, "field required", kind=MISSING))
        return out

    def _error(
        self, loc: list[Any], name: str, value: Any, msg: str, *, kind: str = TYPE
    ) -> FieldError:
        col = self.columns[name] if name in self.columns else None
        err: FieldError = {"loc": [*loc, name], "field": name, "msg": msg, "kind": kind}
        if msg != "field required":
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
            "kind": UNKNOWN,
            "allowed": sorted(self._known),
        }


# ------------------------------------------------------------------ the policy


@dataclass
class Checked:
    """What the validator let through with ``allow_unseen``: counts per kind, and examples."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[FieldError] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, err: FieldError) -> None:
        self.counts[err["kind"]] = self.counts.get(err["kind"], 0) + 1
        if len(self.examples) < 10:
            self.examples.append(err)

    def message(self) -> str:
        parts = [f"{n} {_KIND_TEXT[k]}" for k, n in sorted(self.counts.items())]
        first = self.examples[0]
        value = f" {first['value']!r}" if "value" in first else ""
        return (
            f"Scored anyway (allow_unseen): {', '.join(parts)}; first: field "
            f"'{first['field']}'{value} ({first['msg']})."
        )

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": dict(self.counts), "message": self.message(), "details": self.examples}


_KIND_TEXT = {UNSEEN: "unseen category value(s)", MISSING: "missing field(s)"}


def check_records(
    validator: RecordValidator,
    records: Sequence[Any],
    *,
    single: bool = False,
    allow_unseen: bool = False,
    fix: str = REST_FIX,
) -> Checked:
    """Raise one ValidationError listing every problem of every record (at most 100).

    With ``allow_unseen``, unseen categories and missing fields are counted in the
    returned ``Checked`` instead (the records are scored with them as unknown/missing).
    """
    problems: list[FieldError] = []
    allowed = Checked()
    for i, record in enumerate(records):
        for err in validator.errors(record, None if single else i):
            if allow_unseen and err["kind"] in LENIENT:
                allowed.add(err)
            else:
                problems.append(err)
        if len(problems) >= 100:
            break
    if problems:
        first = problems[0]
        where = f"field '{first['field']}'" if first.get("field") is not None else "the record"
        value = f" (value {first['value']!r})" if "value" in first else ""
        row = "" if single or len(first["loc"]) < 2 else f" in record {first['loc'][1]}"
        more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        raise ValidationError(
            f"Invalid request: {where}{row}: {first['msg']}{value}{more}. {fix}",
            details=problems[:100],
        )
    return allowed


# ------------------------------------------------------------------ frames (files)

FILE_FIX = {
    TYPE: "Clean the value, or mark the token as missing with --na-values.",
    UNSEEN: "Fix the data, or pass --allow-unseen to score these rows anyway (with a warning "
    "and a count).",
}
FILE_FIX[MISSING] = FILE_FIX[UNSEEN]


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _typed(col: Column, series: pd.Series) -> pd.Series:
    """A file column typed as the reader types a cell of this schema column (CSV is text)."""
    if series.dtype != object:
        if col.kind in ("categorical", "boolean") and col.dtype == "str":
            return (
                series.astype(object)
                .where(series.notna(), None)
                .map(lambda v: v if v is None else canonical(v))
            )
        return series
    if col.kind == "numeric":
        parsed = pd.to_numeric(series, errors="coerce")
        return series.where(parsed.isna() | series.isna(), parsed).where(series.notna(), None)
    return series


def _frame_problem(
    col: Column, series: pd.Series, check: Callable[[Any], str | None], nullable: bool
) -> tuple[str, str, Any, pd.Series] | None:
    """(kind, message, value, bad-row mask) of the first failing value of a column."""
    nulls = series.isna()
    if nulls.any() and not nullable:
        return MISSING, "null is not allowed (training had no missing values)", None, nulls
    for value in pd.unique(series[~nulls]):
        msg = check(_python(value))
        if msg is not None:
            kind = UNSEEN if msg == UNSEEN_MSG else TYPE
            if kind == UNSEEN:  # every unseen value of the column counts
                allowed = {canonical(c) for c in col.categories or []}
                mask = series.notna() & ~series.map(lambda v: canonical(_python(v))).isin(allowed)
            else:
                mask = series.map(lambda v, bad=value: v is bad or v == bad)
            return kind, msg, _python(value), mask
    return None


def validate_frame(
    schema: Schema, frame: pd.DataFrame, *, allow_unseen: bool = False
) -> pd.DataFrame:
    """``frame`` typed and checked with the record validator's rules, ready to score.

    DataError (exit 2) naming the column, the value, the first bad row and the fix. With
    ``allow_unseen``, unseen categories and missing features are scored as unknown/missing
    and a KeizokuWarning gives their count.
    """
    validator = RecordValidator(schema)
    out = frame.copy()
    known = set(schema.names)
    extra = [c for c in frame.columns if c not in known]
    if extra:
        warnings.warn(
            f"Column(s) {extra} were not in the training data; they are passed through "
            "and not used by the model.",
            KeizokuWarning,
            stacklevel=2,
        )
    for col in schema.sensitive:
        if col.name not in out.columns:
            out[col.name] = None
    absent = [c.name for c in schema.features if c.name not in frame.columns]
    if absent and not allow_unseen:
        hint = f" The data has column(s) the model never saw: {extra}." if extra else ""
        raise SchemaMismatchError(
            f"The data lacks column(s) {absent} that the model was trained with.{hint} Rename "
            "or add them so the columns match the training schema, or pass --allow-unseen to "
            "score every row with them missing (with a warning).",
            details={"missing": absent, "unexpected": extra},
        )
    counts: dict[str, int] = {}
    if absent:
        counts[f"missing column(s) {absent}"] = len(frame)
    for name in absent:
        out[name] = None
    for col in schema.features:
        if col.name in absent:
            continue
        out[col.name] = _typed(col, frame[col.name])
        found = _frame_problem(
            col, out[col.name], validator._checks[col.name], validator._nullable[col.name]
        )
        if found is None:
            if col.kind == "numeric" and out[col.name].dtype == object:
                out[col.name] = pd.to_numeric(out[col.name])
            continue
        kind, msg, value, mask = found
        n = int(mask.sum())
        row = int(mask.to_numpy().nonzero()[0][0]) + 1
        if kind in LENIENT and allow_unseen:
            counts[f"column '{col.name}' {_KIND_TEXT[kind]} (first {value!r})"] = n
            continue
        shown = "null" if value is None else repr(value)
        raise DataError(
            f"Column '{col.name}' row {row} holds {shown}: {msg}; {n} row(s) of {len(frame)} "
            f"are affected (rows count from 1). {FILE_FIX[kind]}",
            details={"column": col.name, "row": row, "value": value, "rows": n, "kind": kind},
        )
    if counts:
        listed = "; ".join(f"{k}: {n} row(s)" for k, n in counts.items())
        warnings.warn(f"Scored anyway (--allow-unseen): {listed}.", KeizokuWarning, stacklevel=2)
    return out
