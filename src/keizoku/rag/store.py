"""Where a collection lives: ``home()/rag/<name>/`` with ``rag.db`` (SQLite) and index files.

SQLite holds documents, their access lists and chunks, plus ``meta.generation``. Index
files are written into ``gen-<n>/`` folders (each file atomically) *before* the SQLite
transaction that switches ``generation`` to ``n`` commits, so a reader always finds the
files of the generation it reads.

Searches read through ``reader``: one connection per thread and collection, kept open.
What a search derives from the database (generation, embedding, the rows an identity may
see) is kept on that reader only while SQLite's ``PRAGMA data_version`` is unchanged, i.e.
until any other connection, in this process or another, commits a change: an access-list
change is effective at the next query, as before.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keizoku.errors import NotFoundError, UserInputError
from keizoku.home import home

__all__ = [
    "collection_dir",
    "connect",
    "list_collections",
    "valid_name",
    "prune_generations",
    "reader",
    "Reader",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content_acl TEXT NOT NULL DEFAULT '[]',
    ingest_acl TEXT NOT NULL DEFAULT '[]',
    acl_override TEXT,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acl (
    doc_id INTEGER NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    PRIMARY KEY (doc_id, principal)
);
CREATE INDEX IF NOT EXISTS acl_principal ON acl(principal);
-- covering: the allowed documents of a query come from this index alone
CREATE INDEX IF NOT EXISTS acl_principal_doc ON acl(principal, doc_id);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    heading_path TEXT NOT NULL,
    text TEXT NOT NULL,
    tokens TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, position);
"""


def valid_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UserInputError(
            f"Collection name {name!r} is not valid. Use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit, e.g. --collection handbook."
        )
    return name


def rag_root() -> Path:
    return home() / "rag"


def collection_dir(name: str) -> Path:
    return rag_root() / valid_name(name)


def list_collections() -> list[str]:
    root = rag_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "rag.db").is_file())


def connect(name: str, create: bool = False) -> sqlite3.Connection:
    """Open the collection's database; NotFoundError when it does not exist and not ``create``."""
    folder = collection_dir(name)
    db = folder / "rag.db"
    if not db.is_file() and not create:
        raise NotFoundError(
            f"Collection {name!r} does not exist. Create it with "
            f"'keizoku rag ingest PATH --collection {name}'."
        )
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    if create:
        conn.executescript(_SCHEMA)
    return conn


@dataclass
class Reader:
    """A kept read connection and what was derived from the database at ``version``."""

    conn: sqlite3.Connection
    folder: Path
    inode: tuple[int, int]
    version: int = -1
    derived: dict[Any, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[Any, Any]:
        """Begin a read transaction; the cache of derived values, emptied if the data changed."""
        self.conn.execute("BEGIN")
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self.version:
            self.derived.clear()
            self.version = version
        return self.derived

    def end(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")


_READERS = threading.local()
_MAX_DERIVED = 64


def reader(name: str) -> Reader:
    """This thread's read connection to ``name`` (reopened when the database file changed)."""
    db = collection_dir(name) / "rag.db"
    try:
        st = os.stat(db)
    except FileNotFoundError:
        raise NotFoundError(
            f"Collection {name!r} does not exist. Create it with "
            f"'keizoku rag ingest PATH --collection {name}'."
        ) from None
    kept: dict[Path, Reader] = _READERS.__dict__.setdefault("by_db", {})
    found = kept.get(db)
    if found is not None and found.inode == (st.st_dev, st.st_ino):
        if len(found.derived) > _MAX_DERIVED:
            found.derived.clear()
        return found
    if found is not None:
        found.conn.close()
    conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    kept[db] = Reader(conn, db.parent, (st.st_dev, st.st_ino))
    return kept[db]


def prune_generations(name: str, keep: int) -> None:
    """Delete index folders older than generation ``keep - 1`` (the previous one stays)."""
    for path in collection_dir(name).glob("gen-*"):
        suffix = path.name[4:]
        if suffix.isdigit() and int(suffix) < keep - 1:
            shutil.rmtree(path, ignore_errors=True)
