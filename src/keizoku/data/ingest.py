"""Read a table from a file (CSV/TSV/.gz, Parquet, JSON Lines) or a SQL query."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from keizoku.errors import DataError, UserInputError

__all__ = ["ReadOptions", "read_table", "fingerprint_frame", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
DEFAULT_NA = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]


@dataclass
class ReadOptions:
    """How to read a source; mirrors the CLI flags and the ``data:`` block of the spec."""

    header: bool = True
    sep: str | None = None
    na_values: list[str] = field(default_factory=list)
    encoding: str = "utf-8-sig"
    drop: list[str] = field(default_factory=list)
    sql: str | None = None
    db: str | None = None


def _suffixes(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    compressed = name.endswith((".gz", ".bz2", ".zip", ".xz", ".zst"))
    if compressed:
        name = name.rsplit(".", 1)[0]
    return Path(name).suffix, compressed


def _read_delimited(path: Path, opts: ReadOptions, suffix: str) -> pd.DataFrame:
    sep = opts.sep
    if sep is None:
        sep = "\t" if suffix == ".tsv" else None
    na = list(dict.fromkeys(DEFAULT_NA + list(opts.na_values)))
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            engine="python" if sep is None else "c",
            header=0 if opts.header else None,
            na_values=na,
            keep_default_na=True,
            encoding=opts.encoding,
            skipinitialspace=True,
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Cannot decode '{path}' as {opts.encoding}: byte {exc.object[exc.start]:#04x} "
            f"at position {exc.start} is not valid. Pass the file's encoding, for example "
            f"--encoding latin-1 (spec key data.encoding)."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"'{path}' is empty: it has no header and no rows.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(
            f"Cannot parse '{path}': {exc}. Check the separator (--sep) and quoting."
        ) from exc
    if not opts.header:
        frame.columns = [f"col{i}" for i in range(frame.shape[1])]
    return frame


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
