"""Spec sections: one strict base model and one error formatter for every section.

Every section of ``keizoku.yaml`` (``data``, ``train``, ``serving``, ``monitoring``,
``retraining``, ``fairness``) is a :class:`Section`: a pydantic model that refuses
unknown keys. :func:`validate_section` validates a mapping and turns pydantic's
error into one line that names the section, the key, the value and the fix::

    keizoku.yaml: monitoring.alpa is not a known key (did you mean 'alpha'?).
    Known keys: alpha, auc_threshold, categorical_threshold, min_rows, ...

This module imports nothing but pydantic and ``keizoku.errors``, so any package
can define its section here without importing the spec.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from keizoku.errors import UserInputError

__all__ = ["Section", "section_error", "validate_section"]

SPEC_FILE = "keizoku.yaml"

M = TypeVar("M", bound=BaseModel)

# What a value should be, by pydantic error type: the fix told to the user.
_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}


class Section(BaseModel):
    """Base of every spec section: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _keys(model: type[BaseModel]) -> list[str]:
    return sorted((f.alias or name) for name, f in model.model_fields.items())


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel], list[str]]:
    """The model that holds the last key of ``loc``, and the path of keys to it."""
    owner: type[BaseModel] = root
    path: list[str] = []
    for part in loc[:-1]:
        if isinstance(part, int):
            path[-1] = f"{path[-1]}[{part}]"
            continue
        field = _field(owner, str(part))
        if field is None:
            break
        path.append(str(part))
        inner = _model_of(field.annotation)
        if inner is None:
            break
        owner = inner
    return owner, path


def _field(model: type[BaseModel], key: str) -> Any:
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _default(owner: type[BaseModel], key: str) -> str:
    """The default of ``owner.key`` as a user writes it ('' when it has none to show)."""
    try:
        value = owner().model_dump(mode="json", by_alias=True).get(key)
    except PydanticValidationError:  # the owner has required keys
        return ""
    if value is None or isinstance(value, dict | list):
        return ""
    return f" (default: {value!r})"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def section_error(
    exc: PydanticValidationError,
    root: type[BaseModel],
    *,
    prefix: str = "",
    source: str = SPEC_FILE,
) -> UserInputError:
    """One line for the first error of ``exc`` (raised validating ``root``) naming key and fix."""
    err = exc.errors()[0]
    loc = tuple(err["loc"]) or ("",)
    owner, path = _walk(root, loc)
    rest = loc[len(path) + sum(isinstance(p, int) for p in loc[: len(path)]) :]
    first = rest[0] if rest else loc[-1]
    last = str(first)
    key = ".".join(p for p in (prefix, *path, "" if isinstance(first, int) else last) if p)
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else ""
    known = _keys(owner)
    kind = err["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(last, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        listed = ", ".join(known) or "none yet: remove it"
        return UserInputError(f"{source}: {key} is not a known key{hint}. Known keys: {listed}.")
    if kind == "missing":
        where = ".".join(p for p in (prefix, *path) if p)
        under = f"under {where}: " if where else ""
        return UserInputError(f"{source}: {key} is required. Add `{last}: ...` {under}in {source}.")
    reason = str(err["msg"]).removeprefix("Value error, ").rstrip(".")
    expected = _EXPECTED.get(kind)
    fix = f"Set {key} to {expected}" if expected else f"Fix {key}"
    fix += _default(owner, last)
    return UserInputError(
        f"{source}: {key} = {_show(err.get('input'))} is not valid: {reason}. {fix} in {source}."
    )


def validate_section(
    model: type[M], value: Mapping[str, Any] | M | None, section: str, *, source: str = SPEC_FILE
) -> M:
    """``value`` validated as ``model``; an error names ``section``, the key, value and fix."""
    if isinstance(value, model):
        return value
    if value is not None and not isinstance(value, Mapping):
        raise UserInputError(
            f"{source}: {section} = {value!r} is not valid: it must be a mapping of keys to "
            f"values. Known keys: {', '.join(_keys(model))}."
        )
    try:
        return model.model_validate(dict(value or {}))
    except PydanticValidationError as exc:
        raise section_error(exc, model, prefix=section, source=source) from exc
