"""One rule for the names users choose: models, collections, keys, aliases.

A name is 1-64 characters: ASCII letters, digits, ``_``, ``-`` and ``.``, starting with a
letter or digit, and never ``.``/``..`` or containing ``..``. The same rule applies
to a name typed on the command line, in a spec, or in a URL, so a name is always a safe
file name inside ``KEIZOKU_HOME`` and a safe literal in a registry filter.

``check_name`` validates the form; whether a model *exists* is the registry's question
(``keizoku.registry.models.require_model``).
"""

from __future__ import annotations

import re
from pathlib import Path

from keizoku.errors import UserInputError

__all__ = ["MAX_LEN", "check_name", "is_valid_name", "safe_child", "slug"]

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
