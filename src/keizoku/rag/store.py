"""Where a collection lives: its database (documents, access lists, chunks, ``meta``) and
its index files, one *generation* per ingest that changed something.

Two places, following the store (:mod:`keizoku.store`):

- **embedded** (default): ``home()/rag/<name>/rag.db`` (SQLite) and ``gen-<n>/`` folders
  beside it. Index files are written into ``gen-<n>/`` (each file atomically) *before*
  the SQLite transaction that switches ``generation`` to ``n`` commits, so a reader
  always finds the files of the generation it reads.
- **postgresql** (``KEIZOKU_STORE``): the same tables as ``rag_*`` tables of the
  ``keizoku_store`` schema, every row keyed by its collection, so every server reads one
  truth; the generation's index files are rows of ``rag_files``, written in the same
  transaction that switches ``generation``. A server copies a generation it reads once
  into ``home()/rag/<name>/<uid>/gen-<n>/`` (``uid`` names this incarnation of the
  collection, so a collection made again never reuses an old copy).

Both classes (:class:`SqliteCollection`, :class:`PgCollection`) have the same methods,
documented on the first: ``keizoku.rag.collection`` holds the logic, they hold the SQL.

Searches read through :func:`reader`: one connection per thread and collection, kept
open. What a search derives from the database (generation, embedding, the rows an
identity may see) is kept on that reader only while the collection's *version* is
unchanged: SQLite's ``PRAGMA data_version`` (it changes when any other connection, in
this process or another, commits), or the ``rag_versions`` row that every write
transaction on PostgreSQL increments. So an access-list change is effective at the next
query, on every server.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keizoku.errors import NotFoundError, UserInputError
from keizoku.home import home

if TYPE_CHECKING:
    import psycopg

    from keizoku.store.postgres import PostgresStore

__all__ = [
    "PgCollection",
    "Reader",
    "SqliteCollection",
    "collection_dir",
    "connect",
    "generation_dir",
    "list_collections",
    "prune_generations",
    "reader",
    "valid_name",
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

_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS keizoku_store.rag_versions (
    collection TEXT PRIMARY KEY, uid TEXT NOT NULL, version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS keizoku_store.rag_meta (
    collection TEXT NOT NULL REFERENCES keizoku_store.rag_versions ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (collection, key));
CREATE TABLE IF NOT EXISTS keizoku_store.rag_docs (
    id BIGSERIAL PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES keizoku_store.rag_versions ON DELETE CASCADE,
    source TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL, sha256 TEXT NOT NULL,
    content_acl TEXT NOT NULL DEFAULT '[]', ingest_acl TEXT NOT NULL DEFAULT '[]',
    acl_override TEXT, ingested_at TEXT NOT NULL, UNIQUE (collection, source));
CREATE TABLE IF NOT EXISTS keizoku_store.rag_acl (
    doc_id BIGINT NOT NULL REFERENCES keizoku_store.rag_docs ON DELETE CASCADE,
    principal TEXT NOT NULL, PRIMARY KEY (doc_id, principal));
CREATE INDEX IF NOT EXISTS rag_acl_principal_doc ON keizoku_store.rag_acl (principal, doc_id);
CREATE TABLE IF NOT EXISTS keizoku_store.rag_chunks (
    id BIGSERIAL PRIMARY KEY,
    doc_id BIGINT NOT NULL REFERENCES keizoku_store.rag_docs ON DELETE CASCADE,
    position INTEGER NOT NULL, heading_path TEXT NOT NULL, text TEXT NOT NULL,
    tokens TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rag_chunks_doc ON keizoku_store.rag_chunks (doc_id, position);
CREATE TABLE IF NOT EXISTS keizoku_store.rag_files (
    collection TEXT NOT NULL REFERENCES keizoku_store.rag_versions ON DELETE CASCADE,
    gen BIGINT NOT NULL, name TEXT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (collection, gen, name));
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


def _missing(name: str) -> NotFoundError:
    return NotFoundError(
        f"Collection {name!r} does not exist. Create it with "
        f"'keizoku rag ingest PATH --collection {name}'."
    )


def _shared() -> PostgresStore | None:
    """The PostgreSQL store when ``KEIZOKU_STORE`` names one (its RAG tables in place)."""
    from keizoku.store import store_from_env

    store = store_from_env()
    if store.kind == "embedded":
        return None
    from keizoku.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    store.ensure("rag", _PG_SCHEMA)
    return store


def list_collections() -> list[str]:
    pg = _shared()
    if pg is not None:
        with pg.connect() as conn:
            rows = conn.execute(
                "SELECT collection FROM keizoku_store.rag_versions ORDER BY collection"
            ).fetchall()
        return [str(r[0]) for r in rows]
    root = rag_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "rag.db").is_file())


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


class SqliteCollection:
    """A collection in ``home()/rag/<name>/rag.db``."""

    def __init__(self, name: str, create: bool = False, readonly: bool = False) -> None:
        self.name, self.folder = name, collection_dir(name)
        db = self.folder / "rag.db"
        if not db.is_file() and not create:
            raise _missing(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
        if readonly:
            self.conn.execute("PRAGMA query_only = ON")
            return
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        if create:
            self.conn.executescript(_SCHEMA)

    def begin_write(self) -> None:
        """Start the one writer's transaction (other writers wait)."""
        self.conn.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> int:
        """Start a read snapshot; the collection's version (changes with every commit)."""
        self.conn.execute("BEGIN")
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def docs(self) -> list[tuple[str, int, str, str, str | None]]:
        """(source, id, sha256, content_acl, acl_override) of every document."""
        return list(
            self.conn.execute("SELECT source, id, sha256, content_acl, acl_override FROM docs")
        )

    def set_ingest_acl(self, doc_id: int, ingest_acl: str) -> None:
        self.conn.execute("UPDATE docs SET ingest_acl=? WHERE id=?", (ingest_acl, doc_id))

    def add_doc(self, source: str, title: str, kind: str, sha256: str, content_acl: str,
                ingest_acl: str, at: str) -> int:  # fmt: skip
        cur = self.conn.execute(
            "INSERT INTO docs (source, title, kind, sha256, content_acl, ingest_acl, "
            "ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (source, title, kind, sha256, content_acl, ingest_acl, at),
        )
        return int(cur.lastrowid or 0)

    def replace_doc(self, doc_id: int, title: str, kind: str, sha256: str, content_acl: str,
                    ingest_acl: str, at: str) -> None:  # fmt: skip
        """New content for a document (its chunks deleted)."""
        self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        self.conn.execute(
            "UPDATE docs SET title=?, kind=?, sha256=?, content_acl=?, ingest_acl=?, "
            "ingested_at=? WHERE id=?",
            (title, kind, sha256, content_acl, ingest_acl, at, doc_id),
        )

    def delete_doc(self, doc_id: int) -> None:
        self.conn.execute("DELETE FROM docs WHERE id=?", (doc_id,))

    def add_chunk(self, doc_id: int, position: int, heading_path: str, text: str,
                  tokens: str) -> int:  # fmt: skip
        cur = self.conn.execute(
            "INSERT INTO chunks (doc_id, position, heading_path, text, tokens) "
            "VALUES (?, ?, ?, ?, ?)",
            (doc_id, position, heading_path, text, tokens),
        )
        return int(cur.lastrowid or 0)

    def chunk_rows(self) -> list[tuple[int, int, str]]:
        """(id, doc_id, tokens) of every chunk, by document and position."""
        return list(
            self.conn.execute("SELECT id, doc_id, tokens FROM chunks ORDER BY doc_id, position")
        )

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        row = self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM docs), (SELECT COUNT(*) FROM chunks)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def chunk_texts(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT text FROM chunks")]

    def write_acl(self, doc_id: int, acl: Sequence[str]) -> bool:
        """Replace the document's access list; False when it was ``acl`` already."""
        old = {
            r[0] for r in self.conn.execute("SELECT principal FROM acl WHERE doc_id=?", (doc_id,))
        }
        if old == set(acl):
            return False
        self.conn.execute("DELETE FROM acl WHERE doc_id=?", (doc_id,))
        self.conn.executemany("INSERT INTO acl VALUES (?, ?)", [(doc_id, p) for p in sorted(acl)])
        return True

    def find_source(self, source: str) -> tuple[int, str] | None:
        row = self.conn.execute("SELECT id, source FROM docs WHERE source=?", (source,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def set_override(self, doc_id: int, override: str | None) -> tuple[str, str]:
        """Set the override; the document's (content_acl, ingest_acl)."""
        self.conn.execute("UPDATE docs SET acl_override=? WHERE id=?", (override, doc_id))
        content, ingest = self.conn.execute(
            "SELECT content_acl, ingest_acl FROM docs WHERE id=?", (doc_id,)
        ).fetchone()
        return str(content), str(ingest)

    def doc_list(self) -> list[tuple[int, str, str, str, str, int]]:
        """(id, source, title, kind, ingested_at, chunks) by source."""
        return list(
            self.conn.execute(
                "SELECT d.id, d.source, d.title, d.kind, d.ingested_at, COUNT(c.id) FROM docs d "
                "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.source"
            )
        )

    def acl_pairs(self) -> list[tuple[int, str]]:
        return list(self.conn.execute("SELECT doc_id, principal FROM acl"))

    def allowed_docs(self, principals: Sequence[str]) -> np.ndarray:
        """Ids of the documents that list one of ``principals``."""
        covering = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='index' AND name='acl_principal_doc'"
        ).fetchone()
        index = "INDEXED BY acl_principal_doc" if covering else ""
        listed = self.conn.execute(  # one string: far cheaper than a Python row per document
            f"SELECT group_concat(doc_id) FROM acl {index} "
            f"WHERE principal IN ({_marks(principals)})",
            tuple(principals),
        ).fetchone()[0]
        if not listed:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(listed.split(","), dtype=np.int64)

    def hit_rows(self, ids: Sequence[int], principals: Sequence[str]) -> list[tuple[Any, ...]]:
        """(id, source, title, heading_path, position, text) of the chunks ``ids`` whose
        document lists one of ``principals`` (the access list checked again, in SQL)."""
        return list(
            self.conn.execute(
                "SELECT c.id, d.source, d.title, c.heading_path, c.position, c.text FROM chunks c "
                f"JOIN docs d ON d.id = c.doc_id WHERE c.id IN ({_marks(ids)}) AND EXISTS ("
                "SELECT 1 FROM acl a WHERE a.doc_id = d.id AND a.principal IN "
                f"({_marks(principals)}))",
                (*ids, *principals),
            )
        )

    def publish(self, gen: int) -> None:
        """Make generation ``gen``'s files (written into ``folder``) part of the write
        transaction, for a store whose servers do not share ``folder``: nothing to do here."""


class PgCollection:
    """A collection in the ``rag_*`` tables of the PostgreSQL store (one connection of
    its own, not in autocommit: a transaction is open from the first statement to
    :meth:`commit` or :meth:`rollback`)."""

    def __init__(self, store: PostgresStore, name: str, create: bool = False) -> None:
        self.name = valid_name(name)
        self.conn: psycopg.Connection[Any] = store.connect(autocommit=False)
        try:
            row = self._one("SELECT uid FROM keizoku_store.rag_versions WHERE collection=%s")
            if row is None and create:
                self.conn.execute(
                    "INSERT INTO keizoku_store.rag_versions VALUES (%s, %s, 0) "
                    "ON CONFLICT DO NOTHING",
                    (name, uuid.uuid4().hex[:12]),
                )
                self.conn.commit()
                row = self._one("SELECT uid FROM keizoku_store.rag_versions WHERE collection=%s")
            if row is None:
                raise _missing(name)
            self.conn.commit()
        except BaseException:
            self.conn.close()
            raise
        self.uid = str(row[0])
        self.folder = collection_dir(name) / self.uid

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return self.conn.execute(sql, (self.name, *args)).fetchone()

    def begin_write(self) -> None:
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"rag/{self.name}",)
        )

    def begin_read(self) -> int:
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = self._one("SELECT version, uid FROM keizoku_store.rag_versions WHERE collection=%s")
        if row is None:
            self.conn.rollback()
            raise _missing(self.name)
        if row[1] != self.uid:  # the collection was made again: another incarnation
            self.uid, self.folder = str(row[1]), collection_dir(self.name) / str(row[1])
            return -1
        return int(row[0])

    def commit(self) -> None:
        """Commit a write: every reader sees a new version at its next query."""
        self.conn.execute(
            "UPDATE keizoku_store.rag_versions SET version = version + 1 WHERE collection=%s",
            (self.name,),
        )
        self.conn.commit()

    def end_read(self) -> None:
        self.conn.rollback()

    def rollback(self) -> None:
        """Undo a write, and this server's copies of generations it never committed."""
        self.conn.rollback()
        committed = self.meta("generation")
        self.conn.rollback()
        for path in self.folder.glob("gen-*"):
            gen = path.name[4:]
            if gen.isdigit() and (committed is None or int(gen) > int(committed)):
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        self.conn.close()

    def meta(self, key: str) -> str | None:
        row = self._one(
            "SELECT value FROM keizoku_store.rag_meta WHERE collection=%s AND key=%s", key
        )
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO keizoku_store.rag_meta VALUES (%s, %s, %s) "
            "ON CONFLICT (collection, key) DO UPDATE SET value=EXCLUDED.value",
            (self.name, key, value),
        )

    def docs(self) -> list[tuple[str, int, str, str, str | None]]:
        return self.conn.execute(
            "SELECT source, id, sha256, content_acl, acl_override FROM keizoku_store.rag_docs "
            "WHERE collection=%s",
            (self.name,),
        ).fetchall()

    def set_ingest_acl(self, doc_id: int, ingest_acl: str) -> None:
        self.conn.execute(
            "UPDATE keizoku_store.rag_docs SET ingest_acl=%s WHERE id=%s", (ingest_acl, doc_id)
        )

    def add_doc(self, source: str, title: str, kind: str, sha256: str, content_acl: str,
                ingest_acl: str, at: str) -> int:  # fmt: skip
        row = self.conn.execute(
            "INSERT INTO keizoku_store.rag_docs (collection, source, title, kind, sha256, "
            "content_acl, ingest_acl, ingested_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (self.name, source, title, kind, sha256, content_acl, ingest_acl, at),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def replace_doc(self, doc_id: int, title: str, kind: str, sha256: str, content_acl: str,
                    ingest_acl: str, at: str) -> None:  # fmt: skip
        self.conn.execute("DELETE FROM keizoku_store.rag_chunks WHERE doc_id=%s", (doc_id,))
        self.conn.execute(
            "UPDATE keizoku_store.rag_docs SET title=%s, kind=%s, sha256=%s, content_acl=%s, "
            "ingest_acl=%s, ingested_at=%s WHERE id=%s",
            (title, kind, sha256, content_acl, ingest_acl, at, doc_id),
        )

    def delete_doc(self, doc_id: int) -> None:
        self.conn.execute("DELETE FROM keizoku_store.rag_docs WHERE id=%s", (doc_id,))

    def add_chunk(self, doc_id: int, position: int, heading_path: str, text: str,
                  tokens: str) -> int:  # fmt: skip
        row = self.conn.execute(
            "INSERT INTO keizoku_store.rag_chunks (doc_id, position, heading_path, text, "
            "tokens) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (doc_id, position, heading_path, text, tokens),
        ).fetchone()
        assert row is not None
        return int(row[0])

    _CHUNKS = (
        "FROM keizoku_store.rag_chunks c JOIN keizoku_store.rag_docs d ON d.id = c.doc_id "
        "WHERE d.collection=%s"
    )

    def chunk_rows(self) -> list[tuple[int, int, str]]:
        return self.conn.execute(
            f"SELECT c.id, c.doc_id, c.tokens {self._CHUNKS} ORDER BY c.doc_id, c.position",
            (self.name,),
        ).fetchall()

    def counts(self) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM keizoku_store.rag_docs WHERE collection=%s), "
            f"(SELECT COUNT(*) {self._CHUNKS})",
            (self.name, self.name),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def chunk_texts(self) -> list[str]:
        rows = self.conn.execute(f"SELECT c.text {self._CHUNKS}", (self.name,)).fetchall()
        return [str(r[0]) for r in rows]

    def write_acl(self, doc_id: int, acl: Sequence[str]) -> bool:
        rows = self.conn.execute(
            "SELECT principal FROM keizoku_store.rag_acl WHERE doc_id=%s", (doc_id,)
        ).fetchall()
        if {r[0] for r in rows} == set(acl):
            return False
        self.conn.execute("DELETE FROM keizoku_store.rag_acl WHERE doc_id=%s", (doc_id,))
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO keizoku_store.rag_acl VALUES (%s, %s)",
                [(doc_id, p) for p in sorted(acl)],
            )
        return True

    def find_source(self, source: str) -> tuple[int, str] | None:
        row = self._one(
            "SELECT id, source FROM keizoku_store.rag_docs WHERE collection=%s AND source=%s",
            source,
        )
        return None if row is None else (int(row[0]), str(row[1]))

    def set_override(self, doc_id: int, override: str | None) -> tuple[str, str]:
        row = self.conn.execute(
            "UPDATE keizoku_store.rag_docs SET acl_override=%s WHERE id=%s "
            "RETURNING content_acl, ingest_acl",
            (override, doc_id),
        ).fetchone()
        assert row is not None
        return str(row[0]), str(row[1])

    def doc_list(self) -> list[tuple[int, str, str, str, str, int]]:
        return self.conn.execute(
            "SELECT d.id, d.source, d.title, d.kind, d.ingested_at, COUNT(c.id) "
            "FROM keizoku_store.rag_docs d LEFT JOIN keizoku_store.rag_chunks c "
            "ON c.doc_id = d.id WHERE d.collection=%s GROUP BY d.id ORDER BY d.source",
            (self.name,),
        ).fetchall()

    def acl_pairs(self) -> list[tuple[int, str]]:
        return self.conn.execute(
            "SELECT a.doc_id, a.principal FROM keizoku_store.rag_acl a "
            "JOIN keizoku_store.rag_docs d ON d.id = a.doc_id WHERE d.collection=%s",
            (self.name,),
        ).fetchall()

    def allowed_docs(self, principals: Sequence[str]) -> np.ndarray:
        row = self.conn.execute(
            "SELECT string_agg(a.doc_id::text, ',') FROM keizoku_store.rag_acl a "
            "JOIN keizoku_store.rag_docs d ON d.id = a.doc_id "
            "WHERE d.collection=%s AND a.principal = ANY(%s)",
            (self.name, list(principals)),
        ).fetchone()
        if row is None or not row[0]:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(str(row[0]).split(","), dtype=np.int64)

    def hit_rows(self, ids: Sequence[int], principals: Sequence[str]) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            f"SELECT c.id, d.source, d.title, c.heading_path, c.position, c.text {self._CHUNKS} "
            "AND c.id = ANY(%s) AND EXISTS (SELECT 1 FROM keizoku_store.rag_acl a "
            "WHERE a.doc_id = d.id AND a.principal = ANY(%s))",
            (self.name, list(ids), list(principals)),
        ).fetchall()

    def publish(self, gen: int) -> None:
        folder = self.folder / f"gen-{gen}"
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO keizoku_store.rag_files VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (collection, gen, name) DO UPDATE SET data=EXCLUDED.data",
                [(self.name, gen, p.name, p.read_bytes()) for p in sorted(folder.iterdir())],
            )

    def fetch_generation(self, gen: int) -> Path:
        """This server's copy of generation ``gen``'s files (copied once, atomically)."""
        target = self.folder / f"gen-{gen}"
        if target.is_dir():
            return target
        rows = self.conn.execute(
            "SELECT name, data FROM keizoku_store.rag_files WHERE collection=%s AND gen=%s",
            (self.name, gen),
        ).fetchall()
        tmp = self.folder / f".gen-{gen}.tmp-{os.getpid()}-{threading.get_ident()}"
        tmp.mkdir(parents=True, exist_ok=True)
        for name, data in rows:
            (tmp / str(name)).write_bytes(bytes(data))
        try:
            os.rename(tmp, target)
        except OSError:  # another thread or process copied it first
            shutil.rmtree(tmp, ignore_errors=True)
        return target


def connect(name: str, create: bool = False) -> SqliteCollection | PgCollection:
    """Open the collection's database; NotFoundError when it does not exist and not ``create``."""
    pg = _shared()
    if pg is not None:
        return PgCollection(pg, name, create)
    return SqliteCollection(name, create)


def generation_dir(db: SqliteCollection | PgCollection, gen: int) -> Path:
    """The folder of generation ``gen``'s index files, readable on this server."""
    if isinstance(db, PgCollection):
        return db.fetch_generation(gen)
    return db.folder / f"gen-{gen}"


@dataclass
class Reader:
    """A kept read connection and what was derived from the database at ``version``."""

    db: SqliteCollection | PgCollection
    inode: tuple[int, int]
    version: int = -1
    derived: dict[Any, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.db.folder

    def snapshot(self) -> dict[Any, Any]:
        """Begin a read transaction; the cache of derived values, emptied if the data changed."""
        version = self.db.begin_read()
        if version != self.version:
            self.derived.clear()
            self.version = version
        return self.derived

    def end(self) -> None:
        if isinstance(self.db, PgCollection):
            self.db.end_read()
        else:
            self.db.commit()


_READERS = threading.local()
_MAX_DERIVED = 64


def reader(name: str) -> Reader:
    """This thread's read connection to ``name`` (reopened when the database file changed,
    or, on PostgreSQL, when the collection was made again)."""
    kept: dict[tuple[str, Path], Reader] = _READERS.__dict__.setdefault("by_db", {})
    pg = _shared()
    if pg is not None:
        key = (pg.describe(), collection_dir(name))
        found = kept.get(key)
        if isinstance(found, Reader) and isinstance(found.db, PgCollection):
            if not (found.db.conn.closed or found.db.conn.broken):
                return _trimmed(found)
        kept[key] = Reader(PgCollection(pg, name), (0, 0))
        return kept[key]
    db = collection_dir(name) / "rag.db"
    try:
        st = os.stat(db)
    except FileNotFoundError:
        raise _missing(name) from None
    found = kept.get(("", db))
    if found is not None and found.inode == (st.st_dev, st.st_ino):
        return _trimmed(found)
    if found is not None:
        found.db.close()
    kept[("", db)] = Reader(SqliteCollection(name, readonly=True), (st.st_dev, st.st_ino))
    return kept[("", db)]


def _trimmed(found: Reader) -> Reader:
    if len(found.derived) > _MAX_DERIVED:
        found.derived.clear()
    return found


def prune_generations(name: str, keep: int) -> None:
    """Delete index files older than generation ``keep - 1`` (the previous one stays)."""
    pg = _shared()
    if pg is not None:
        with pg.connect() as conn:
            conn.execute(
                "DELETE FROM keizoku_store.rag_files WHERE collection=%s AND gen < %s",
                (name, keep - 1),
            )
    for path in collection_dir(name).glob("**/gen-*"):
        suffix = path.name[4:]
        if suffix.isdigit() and int(suffix) < keep - 1:
            shutil.rmtree(path, ignore_errors=True)
