"""The read flags every data-reading command shares, merged over the project's ``data:`` keys.

A flag left out keeps the spec's value (or the default), so ``keizoku monitor abalone
--data new.csv`` reads a headerless file as ``init --no-header --names …`` said.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

import typer

from keizoku.errors import UserInputError

__all__ = ["ReadFlags", "model_name", "na_markers", "read_options"]

Header = Annotated[
    bool | None,
    typer.Option(
        "--header/--no-header",
        help="Whether the first row names the columns (default: the spec's data.header, yes).",
        show_default=False,
    ),
]
Names = Annotated[
    str | None,
    typer.Option("--names", help="Column names for a file without a header: a,b,c."),
]
Sep = Annotated[str | None, typer.Option("--sep", help="Field separator (default: detected).")]
NaValues = Annotated[
    list[str] | None,
    typer.Option(
        "--na-values",
        help="Missing-value markers: '?' for every column, COL=0 for one; comma-separated, "
        "repeatable: --na-values glucose=0,insulin=0,?",
    ),
]
Encoding = Annotated[
    str | None, typer.Option("--encoding", help="Text encoding (default: utf-8-sig).")
]
Ragged = Annotated[
    bool | None,
    typer.Option(
        "--allow-ragged-rows",
        help="Fill rows with too few fields, drop rows with too many (counted); default: error.",
        show_default=False,
    ),
]
Duplicates = Annotated[
    bool | None,
    typer.Option(
        "--allow-duplicate-columns",
        help="Read repeated column names as x, x.1 (counted); default: error.",
        show_default=False,
    ),
]


@dataclasses.dataclass
class ReadFlags:
    """The read flags as given (None: not given, keep the spec's value)."""

    header: bool | None = None
    names: str | None = None
    sep: str | None = None
    na_values: list[str] | None = None
    encoding: str | None = None
    allow_ragged_rows: bool | None = None
    allow_duplicate_columns: bool | None = None

    def given(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("header", "sep", "encoding", "allow_ragged_rows", "allow_duplicate_columns"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.names is not None:
            out["names"] = [n.strip() for n in self.names.split(",") if n.strip()]
            out.setdefault("header", False)
        elif self.header:
            out["names"] = []  # --header: the file names its columns, not the spec's names
        if self.na_values:
            out["na_values"], out["column_na_values"] = na_markers(self.na_values)
        return out


def na_markers(values: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``['glucose=0,insulin=0', '?']`` → (``['?']``, ``{'glucose': ['0'], 'insulin': ['0']}``)."""
    common: list[str] = []
    per_column: dict[str, list[str]] = {}
    for value in values:
        for item in value.split(","):
            column, eq, marker = item.partition("=")
            if not eq:
                common.append(item.strip())
            elif not column.strip():
                raise UserInputError(
                    f"--na-values item '{item}' has no column before '='. Write COLUMN=VALUE "
                    "(one column) or VALUE (every column), e.g. --na-values glucose=0,?"
                )
            else:
                per_column.setdefault(column.strip(), []).append(marker.strip())
    return common, per_column


def read_options(base: Any, flags: ReadFlags, **extra: Any) -> Any:
    """``base`` (a ``ReadOptions``) with the given flags and ``extra`` fields over it."""
    return dataclasses.replace(base, **flags.given(), **extra)


def model_name(ref: str) -> str:
    """``NAME`` of ``NAME``, ``NAME@alias`` or ``NAME:version``."""
    return re.split(r"[@:]", ref, maxsplit=1)[0]
