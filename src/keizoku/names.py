"""One rule for the names users choose: models, collections, keys, aliases.

A name is 1-64 characters: ASCII letters, digits, ``_``, ``-`` and ``.``, starting with a
letter or digit, and never ``.``/``..`` or containing ``..``. The same rule applies
to a name typed on the command line, in a spec, or in a URL, so a name is always a safe
file name inside ``KEIZOKU_HOME`` and a safe literal in a registry filter.

``check_name`` validates the form; whether a model *exists* is the registry's question
(``keizoku.registry.models.require_model``). ``closest`` finds the name a user probably
meant among the existing ones (a model, a served model, a column), for the "did you mean"
of an error; it needs only ``difflib``, so an error about a name loads no data library.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from keizoku.errors import UserInputError

__all__ = ["MAX_LEN", "check_name", "closest", "is_valid_name", "safe_child", "slug"]

MAX_LEN = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(_NAME.match(name)) and ".." not in name


def check_name(name: object, what: str = "Model name") -> str:
    """Return ``name`` when it follows the rule; UserInputError naming it and the fix."""
    if is_valid_name(name):
        return name  # type: ignore[return-value]
    shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:77] + "...")
    raise UserInputError(
        f"{what} {shown} is not valid: use 1-{MAX_LEN} ASCII letters, digits, '_', '-' or '.', "
        "starting with a letter or digit (e.g. 'churn-model')."
    )


def closest(name: str, options: list[str]) -> str | None:
    """The option ``name`` most probably meant: the same ignoring case, else the closest
    spelling (``difflib``, ratio at least 0.5, with case then without); None when none is."""
    lowered = {o.lower(): o for o in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    if match:
        return match[0]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


def safe_child(folder: Path, name: str, suffix: str = "", what: str = "Model name") -> Path:
    """``folder/<name><suffix>`` for a valid name; never a path outside ``folder``."""
    check_name(name, what)
    path = folder / f"{name}{suffix}"
    if path.resolve().parent != folder.resolve():
        raise UserInputError(f"{what} {name!r} would leave {folder}.")
    return path


def slug(text: str) -> str:
    """A safe file-name stem for text that is not a user-chosen name (a host name, say)."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".")
    return stem[:MAX_LEN] or "_"
