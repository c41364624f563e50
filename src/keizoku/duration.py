"""One duration type for the whole package: ``Duration`` in specs, ``parse_duration`` in code.

Accepted: a number of seconds (``90``, ``1.5``) or a number with one unit —
``ms``, ``s``/``sec``, ``m``/``min``, ``h``, ``d``, ``w`` (``250ms``, ``90s``, ``5m``,
``1.5h``, ``7d``, ``2w``). Every budget, window, interval and cooldown uses it, so a
spec key, a CLI flag and a REST field all read durations the same way.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from keizoku.errors import UserInputError

__all__ = ["Duration", "UNITS", "format_duration", "parse_duration"]

UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)?\s*$")


def parse_duration(text: str | float | int, *, what: str = "Duration") -> float:
    """``'90s'``, ``'2m'``, ``'1.5h'``, ``'7d'``, ``60`` → seconds (a float >= 0)."""
    if isinstance(text, bool):
        raise UserInputError(f"{what} {text!r} is not a duration. Use e.g. 90s, 5m, 1h, 7d.")
    if isinstance(text, int | float):
        if text < 0 or text != text:
            raise UserInputError(f"{what} {text!r} must be a number of seconds >= 0.")
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise UserInputError(
            f"{what} {text!r} is not a duration. Use a number of seconds or a number with a "
            "unit: 250ms, 90s, 5m, 1.5h, 7d, 2w."
        )
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest exact form: 90 → '90s', 3600 → '1h', 0.25 → '250ms'."""
    for unit in ("w", "d", "h", "m", "s"):
        value = seconds / UNITS[unit]
        if value >= 1 and float(value).is_integer():
            return f"{int(value)}{unit}"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _validate(value: object) -> float:
    try:
        return parse_duration(value)  # type: ignore[arg-type]
    except UserInputError as exc:
        raise ValueError(exc.message) from exc


Duration = Annotated[
    float,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str),
]
"""A pydantic field type: accepts '90s', '5m', '7d' or seconds; stores seconds; dumps '90s'."""
