"""Where every command prints, and the root options that change it (``-q``, ``-v``).

One convention (docs/cli.md): results a script reads (``--json``, ``-o -``) go to stdout
with :func:`emit_json` / plain writes; tables and messages for people go to ``console``
(stdout), silenced by ``-q``; progress, warnings and ``-v`` notes go to ``err`` (stderr).
Errors are printed by ``keizoku.cli._exit.run``, always.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "emit_json", "err", "fit", "quiet", "say", "set_quiet", "table"]


class _Console(Console):
    """A rich ``Console`` made when it is first used, not when this module is imported.

    A console reads the terminal (width, colours, whether stdout is a terminal) and the
    environment (``COLUMNS``, ``NO_COLOR``...) when it is made. Made on first use, it reads
    them as they are when the command prints, so a process that imported the CLI earlier
    (the tests' fork server, decision 0008 s16; an application embedding it) prints as a
    new ``keizoku`` process would.
    """

    def __init__(self, **options: Any) -> None:
        self.__dict__["_lazy_options"] = options  # no Console attribute is set yet

    def _make(self) -> None:
        options = self.__dict__.pop("_lazy_options", None)
        if options is not None:
            Console.__init__(self, **options)

    def __getattr__(self, name: str) -> Any:  # only for attributes not set yet
        if "_lazy_options" not in self.__dict__:
            raise AttributeError(name)
        self._make()
        return getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._make()
        super().__setattr__(name, value)


console: Console = _Console()
err: Console = _Console(stderr=True)
_quiet: list[bool] = [False]


def set_quiet(value: bool) -> None:
    """``-q``: nothing on stdout but results a script reads; no progress bars."""
    _quiet[0] = value
    console.quiet = value


def quiet() -> bool:
    return _quiet[0]


def say(message: str, *, to_stderr: bool = False) -> None:
    """A message for people (a confirmation, a note), as plain text; silenced by ``-q``.

    Results a script reads (a token, hits, an answer) are printed with ``typer.echo``.
    """
    if not quiet():
        stream = sys.stderr if to_stderr else sys.stdout
        stream.write(message + "\n")
        stream.flush()


def emit_json(value: Any) -> None:
    """A ``--json`` result on stdout: one JSON document on one line."""
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def fit(t: Table) -> Table:
    """Let ``t`` fit any width: cells fold onto more lines, never end in "…" (80 columns)."""
    for column in t.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return t


def table(title: str, columns: list[str], *, right: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold rather than being cut (see :func:`fit`)."""
    t = Table(title=title)
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left")
    return fit(t)
