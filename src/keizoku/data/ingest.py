"""Read a table from a file (CSV/TSV/.gz, Parquet, JSON Lines) or a SQL query."""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import lzma
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

from keizoku.errors import DataError, KeizokuWarning, UserInputError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ReadOptions",
    "fingerprint_frame",
    "numeric_header",
    "read_table",
]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
DEFAULT_NA = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]


@dataclass
class ReadOptions:
    """How to read a source; mirrors the CLI flags and the ``data:`` block of the spec.

    ``names`` name the columns of a file without a header row (default ``col0..colN``).
    ``na_values`` are missing-value markers for every column, ``column_na_values`` for one
    column each (``{"glucose": ["0"]}``): pima's zeros are missing in five columns only.
    A headerless file one column narrower than ``names`` is read as lacking ``target``
    (a file to score). A header with a repeated name, and a row with fewer or more
    fields than the header, are errors naming their lines unless
    ``allow_duplicate_columns`` (``x``, ``x.1``) or ``allow_ragged_rows`` (short rows
    filled with missing values, long rows dropped); accepted, they are counted in a
    :class:`~keizoku.errors.KeizokuWarning`.
    """

    header: bool = True
    names: list[str] = field(default_factory=list)
    sep: str | None = None
    na_values: list[str] = field(default_factory=list)
    column_na_values: dict[str, list[str]] = field(default_factory=dict)
    encoding: str = "utf-8-sig"
    drop: list[str] = field(default_factory=list)
    sql: str | None = None
    db: str | None = None
    allow_duplicate_columns: bool = False
    allow_ragged_rows: bool = False
    target: str | None = None  # a headerless file one column short of names lacks only it


@dataclass
class _Layout:
    """What one pass over a delimited file found: its header, width and odd rows."""

    header: list[str]
    width: int
    short: list[int]  # line numbers of rows with fewer fields than the header
    long: list[int]  # ... with more


def _suffixes(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    compressed = name.endswith((".gz", ".bz2", ".zip", ".xz", ".zst"))
    if compressed:
        name = name.rsplit(".", 1)[0]
    return Path(name).suffix, compressed


def _open_text(path: Path, encoding: str) -> IO[str] | None:
    """The file as text, decompressed (None for a compression the scan cannot open)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    if name.endswith(".bz2"):
        return bz2.open(path, "rt", encoding=encoding, newline="")
    if name.endswith(".xz"):
        return lzma.open(path, "rt", encoding=encoding, newline="")
    if name.endswith((".zip", ".zst")):
        return None
    return open(path, encoding=encoding, newline="")  # noqa: SIM115 - closed by the caller


def _separator(path: Path, opts: ReadOptions, suffix: str) -> str:
    if opts.sep is not None:
        return opts.sep
    if suffix == ".tsv":
        return "\t"
    fh = _open_text(path, opts.encoding)
    if fh is None:
        return ","
    with fh:
        first = fh.readline()
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or nothing to tell by
        return ","


def _scan(path: Path, opts: ReadOptions, sep: str) -> _Layout | None:
    """One pass with the csv module: the raw header (before pandas renames ``x`` to
    ``x.1``) and the line numbers of short and long rows (pandas fills short rows silently)."""
    if len(sep) != 1:
        return None  # a regular-expression separator: pandas' own checks only
    fh = _open_text(path, opts.encoding)
    if fh is None:
        return None
    with fh:
        reader = csv.reader(fh, delimiter=sep, skipinitialspace=True)
        first = next((row for row in reader if row), None)
        if first is None:
            return None
        header = [c.strip() for c in first] if opts.header else []
        width = len(first)
        short: list[int] = []
        long: list[int] = []
        for row in reader:
            if not row:
                continue
            if len(row) < width:
                short.append(reader.line_num)
            elif len(row) > width:
                long.append(reader.line_num)
    return _Layout(header, width, short, long)


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:5]))
    return shown + (f" … ({len(numbers)} in all)" if len(numbers) > 5 else "")


def _mangled(names: list[str]) -> list[str]:
    """Repeated names made unique as pandas does: ``x``, ``x.1``, ``x.2``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}.{n}")
    return out


def _column_names(path: Path, opts: ReadOptions, layout: _Layout | None) -> list[str] | None:
    """The names the frame's columns get; errors for names that do not fit the file."""
    if opts.names and opts.header:
        raise UserInputError(
            f"--names is for a file without a header row, but '{path}' is read with its "
            "first row as the header. Add --no-header (spec key data.header: false), or "
            "drop --names to keep the file's names."
        )
    if layout is None:
        return None
    if opts.names:
        names = list(opts.names)
        if len(names) == layout.width + 1 and opts.target in names:
            names.remove(opts.target)  # a file to score: the target column is absent
        if len(names) != layout.width:
            raise UserInputError(
                f"--names gives {len(opts.names)} names but '{path}' has {layout.width} "
                f"columns: {','.join(opts.names)}. Give one name per column (--names, spec "
                "key data.names)."
            )
    elif opts.header:
        names = layout.header
    else:
        names = [f"col{i}" for i in range(layout.width)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated and not opts.allow_duplicate_columns:
        where = "header of" if opts.header else "--names for"
        raise DataError(
            f"The {where} '{path}' repeats column name(s) {repeated} (line 1). Rename them, "
            "or pass --allow-duplicate-columns (spec key data.allow_duplicate_columns: true) "
            "to read them as x, x.1, ..."
        )
    if repeated:
        warnings.warn(
            f"'{path}': {len(repeated)} repeated column name(s) {repeated} read as "
            f"{[n for n in _mangled(names) if n.split('.')[0] in repeated]}.",
            KeizokuWarning,
            stacklevel=4,
        )
    return _mangled(names)


def _check_rows(path: Path, opts: ReadOptions, layout: _Layout | None) -> None:
    if layout is None or not (layout.short or layout.long):
        return
    parts = []
    if layout.short:
        parts.append(f"{len(layout.short)} row(s) with fewer than {layout.width} fields "
                     f"(line {_lines(layout.short)})")  # fmt: skip
    if layout.long:
        parts.append(f"{len(layout.long)} row(s) with more than {layout.width} fields "
                     f"(line {_lines(layout.long)})")  # fmt: skip
    if not opts.allow_ragged_rows:
        raise DataError(
            f"'{path}' has {' and '.join(parts)}. Fix the file or its separator (--sep), or "
            "pass --allow-ragged-rows (spec key data.allow_ragged_rows: true) to fill short "
            "rows with missing values and drop long ones."
        )
    warnings.warn(
        f"'{path}': accepted {' and '.join(parts)}: short rows filled with missing values, "
        "long rows dropped.",
        KeizokuWarning,
        stacklevel=4,
    )


def _na_markers(opts: ReadOptions, columns: list[str] | None) -> list[str] | dict[str, list[str]]:
    """Missing-value markers: one list for every column, or per column when any is given."""
    common = list(dict.fromkeys(DEFAULT_NA + list(opts.na_values)))
    if not opts.column_na_values:
        return common
    if columns is None:
        raise UserInputError(
            "Missing-value markers per column (--na-values COLUMN=VALUE, spec key "
            "data.column_na_values) need a plain or .gz/.bz2/.xz delimited file."
        )
    unknown = [c for c in opts.column_na_values if c not in columns]
    if unknown:
        raise UserInputError(
            f"--na-values names column(s) {unknown} that are not in the data. "
            f"Columns are: {columns}"
        )
    return {c: common + list(opts.column_na_values.get(c, [])) for c in columns}


def _read_delimited(path: Path, opts: ReadOptions, suffix: str) -> pd.DataFrame:
    try:
        sep = _separator(path, opts, suffix)
        layout = _scan(path, opts, sep)
        columns = _column_names(path, opts, layout)
        _check_rows(path, opts, layout)
        frame = pd.read_csv(
            path,
            sep=sep,
            engine="c" if len(sep) == 1 else "python",
            header=0 if opts.header else None,
            names=columns,
            na_values=_na_markers(opts, columns),
            keep_default_na=True,
            encoding=opts.encoding,
            skipinitialspace=True,
            on_bad_lines="skip" if opts.allow_ragged_rows else "error",
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Cannot decode '{path}' as {opts.encoding}: byte {exc.object[exc.start]:#04x} "
            f"at position {exc.start} is not valid. Pass the file's encoding, for example "
            f"--encoding latin-1 (spec key data.encoding)."
        ) from exc
    except LookupError as exc:
        raise UserInputError(
            f"Unknown encoding '{opts.encoding}' (--encoding, spec key data.encoding): "
            "use a Python codec name such as utf-8, latin-1 or cp1252."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"'{path}' is empty: it has no header and no rows.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(
            f"Cannot parse '{path}': {exc}. Check the separator (--sep) and quoting."
        ) from exc
    if columns is None and not opts.header:
        frame.columns = list(opts.names) or [f"col{i}" for i in range(frame.shape[1])]
    return frame


def numeric_header(source: str | Path | None, opts: ReadOptions) -> list[str]:
    """Names in the header row of delimited ``source`` that read as numbers (abalone's
    ``0.455``): the file probably has no header. Empty when read without a header."""
    if source is None or opts.sql or not opts.header:
        return []
    path = Path(source)
    suffix, _ = _suffixes(path)
    if not path.is_file() or suffix not in (".csv", ".tsv", ".txt", ""):
        return []
    try:
        fh = _open_text(path, opts.encoding)
        if fh is None:
            return []
        with fh:
            first = next(csv.reader(fh, delimiter=_separator(path, opts, suffix)), [])
    except (UnicodeDecodeError, LookupError, csv.Error, OSError):
        return []  # the read itself reports these
    found = []
    for name in first:
        try:
            float(name)
        except ValueError:
            continue
        found.append(name.strip())
    return found


def _read_file(path: Path, opts: ReadOptions) -> pd.DataFrame:
    if not path.exists():
        raise UserInputError(f"Data file '{path}' does not exist. Check the path.")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"'{path}' is empty (0 bytes). Point keizoku at a file with rows.")
    suffix, _ = _suffixes(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        try:
            return pd.read_json(path, lines=suffix != ".json" or _looks_like_lines(path))
        except ValueError as exc:
            raise DataError(f"Cannot parse JSON in '{path}': {exc}") from exc
    if suffix in (".csv", ".tsv", ".txt", ""):
        return _read_delimited(path, opts, suffix)
    raise UserInputError(
        f"Unsupported file type '{suffix}' for '{path}'. Supported: "
        f"{', '.join(SUPPORTED_SUFFIXES)} (optionally .gz), or --sql with --db."
    )


def _looks_like_lines(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1).strip()
    return head != b"["


def _read_sql(query: str, db: str) -> pd.DataFrame:
    if "://" in db:
        import sqlalchemy

        if db.startswith("duckdb://"):
            return _read_duckdb(query, db.removeprefix("duckdb://").lstrip("/") or ":memory:")
        engine = sqlalchemy.create_engine(db)
        try:
            with engine.connect() as conn:
                return pd.read_sql_query(sqlalchemy.text(query), conn)
        finally:
            engine.dispose()
    path = Path(db)
    if not path.exists():
        raise UserInputError(f"Database file '{db}' does not exist. Pass --db PATH or a URL.")
    if path.suffix.lower() in (".duckdb", ".ddb"):
        return _read_duckdb(query, str(path))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            return pd.read_sql_query(query, conn)
        except Exception as exc:  # pandas wraps sqlite errors in several types
            raise DataError(f"SQL query failed on '{db}': {exc}") from exc


def _read_duckdb(query: str, path: str) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect(path, read_only=path != ":memory:")
    try:
        return con.execute(query).df()
    except duckdb.Error as exc:
        raise DataError(f"SQL query failed on '{path}': {exc}") from exc
    finally:
        con.close()


def read_table(source: str | Path | None, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Read ``source`` (a file path) or ``opts.sql`` against ``opts.db`` into a DataFrame."""
    opts = opts or ReadOptions()
    if opts.sql:
        if not opts.db:
            raise UserInputError("--sql needs --db (a SQLite/DuckDB file or a SQLAlchemy URL).")
        frame = _read_sql(opts.sql, opts.db)
    elif source is None:
        raise UserInputError("No data source: pass a file path, or --sql QUERY --db URL.")
    else:
        frame = _read_file(Path(source), opts)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in opts.drop if c not in frame.columns]
    if missing:
        raise UserInputError(
            f"--drop names column(s) {missing} that are not in the data. "
            f"Columns are: {list(frame.columns)}"
        )
    frame = frame.drop(columns=list(opts.drop))
    if frame.shape[0] == 0:
        raise DataError(f"'{source or opts.sql}' has a header but no rows.")
    return frame


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """sha256 of the frame's content (values, column names and dtypes), order-sensitive."""
    h = hashlib.sha256()
    h.update("|".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    h.update(hashed.tobytes())
    return h.hexdigest()
