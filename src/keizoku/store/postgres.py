"""The shared store: one ``keizoku_store`` schema in a PostgreSQL database (psycopg 3).

MLflow's tables stay in the database's default schema (``public``). The schema is not
called ``keizoku``: PostgreSQL's default ``search_path`` starts with ``"$user"``, so a
schema named like the login user (``keizoku`` is the obvious user name) would become
the default schema and MLflow would find our tables where it expects its own.

Tables (created when first needed, idempotently, under an advisory lock so processes
starting together do not race): ``documents`` (kind, key, body, stamp), ``lines``
(stream, seq, line), ``heads`` (stream, count, hash), ``keys`` and ``users`` (the same
columns as the embedded ``auth.db``).

- a chained append runs in one transaction holding ``pg_advisory_xact_lock`` on the
  stream: read the last line, build the next, insert it and update the head; so writers on
  any machine keep one chain;
- a named lock is ``pg_advisory_lock`` on its own connection, held for the block (a
  crashed holder's lock is released with its connection);
- each thread of a process keeps one autocommit connection (reopened when broken).

An unreachable server, a refused login or a missing database is a
:class:`~keizoku.errors.UserInputError` (exit 2) naming ``KEIZOKU_STORE`` with the URL
without its password; the driver's own message is included only with the password
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from keizoku.errors import ConflictError, UserInputError, require_extra
from keizoku.store.base import KeyRow, check_path
from keizoku.store.embedded import GENESIS, line_hash

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

_SCHEMA_LOCK = "keizoku/schema"
_DDL = """
CREATE SCHEMA IF NOT EXISTS keizoku_store;
CREATE TABLE IF NOT EXISTS keizoku_store.documents (
    kind TEXT NOT NULL, key TEXT NOT NULL, body JSONB NOT NULL,
    stamp DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS keizoku_store.lines (
    stream TEXT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (stream, seq));
CREATE TABLE IF NOT EXISTS keizoku_store.heads (
    stream TEXT PRIMARY KEY, count BIGINT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keizoku_store.keys (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, "user" TEXT,
    token_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE IF NOT EXISTS keizoku_store.users (
    "user" TEXT PRIMARY KEY, groups TEXT NOT NULL, updated_at TEXT NOT NULL);
"""
_KEY_COLUMNS = 'name, role, "user", token_sha256, created_at, revoked'


def _lock_id(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def _key_row(row: tuple[Any, ...]) -> KeyRow:
    return KeyRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


class PostgresStore:
    """State in the ``keizoku_store`` schema of one PostgreSQL database."""

    kind = "postgresql"

    def __init__(self, url: str) -> None:
        from keizoku.store import redact

        self.url = url
        self.safe_url = redact(url)
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        self._ensured: set[str] = set()

    def describe(self) -> str:
        return f"the PostgreSQL store {self.safe_url}"

    # ------------------------------------------------------------------ connections

    def _connect(self) -> psycopg.Connection[Any]:
        driver = require_extra("psycopg", "postgres")
        try:
            conn: psycopg.Connection[Any] = driver.connect(
                self.url, autocommit=True, connect_timeout=10
            )
        except driver.Error as exc:
            raise self._unreachable(exc) from None
        return conn

    def _unreachable(self, exc: BaseException) -> UserInputError:
        from urllib.parse import urlsplit

        why = " ".join(str(exc).split()) or type(exc).__name__
        password = urlsplit(self.url).password
        if password:
            why = why.replace(password, "***")
        return UserInputError(
            f"KEIZOKU_STORE={self.safe_url} cannot be used: {why}. Start the PostgreSQL "
            "server, create the database, or fix KEIZOKU_STORE "
            "(postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)."
        )

    def _conn(self) -> psycopg.Connection[Any]:
        """This thread's connection, with the schema in place."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    with self.lock(_SCHEMA_LOCK):
                        conn.execute(_DDL)
                    self._ready = True
        return conn

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection of the caller's own (closed by the caller), schema in place."""
        self._conn()
        conn = self._connect()
        conn.autocommit = autocommit
        return conn

    def ensure(self, key: str, ddl: str) -> None:
        """Run ``ddl`` (idempotent ``CREATE … IF NOT EXISTS``) once per process, under the
        schema lock: the tables of a module that keeps more than the primitives (RAG)."""
        with self._ready_lock:
            if key in self._ensured:
                return
        with self._run() as conn, self.lock(_SCHEMA_LOCK):
            conn.execute(ddl)
        with self._ready_lock:
            self._ensured.add(key)

    @contextmanager
    def _run(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection; a dropped connection becomes the one-line error."""
        import psycopg

        conn = self._conn()
        try:
            yield conn
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None

    # ------------------------------------------------------------------ documents

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._run() as conn:
            row = conn.execute(
                "SELECT body FROM keizoku_store.documents WHERE kind=%s AND key=%s", (kind, key)
            ).fetchone()
        return None if row is None else dict(row[0])

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        check_path(kind, "document kind"), check_path(key, "document key")
        body = json.dumps(doc, default=str)
        with self._run() as conn:
            conn.execute(
                "INSERT INTO keizoku_store.documents (kind, key, body, stamp) "
                "VALUES (%s, %s, %s::jsonb, extract(epoch FROM clock_timestamp())) "
                "ON CONFLICT (kind, key) DO UPDATE SET body=EXCLUDED.body, "
                "stamp=GREATEST(EXCLUDED.stamp, keizoku_store.documents.stamp + 1e-6)",
                (kind, key, body),
            )

    def delete(self, kind: str, key: str) -> bool:
        with self._run() as conn:
            cur = conn.execute(
                "DELETE FROM keizoku_store.documents WHERE kind=%s AND key=%s", (kind, key)
            )
        return cur.rowcount > 0

    def documents(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        with self._run() as conn:
            rows = conn.execute(
                "SELECT key, body FROM keizoku_store.documents "
                "WHERE kind=%s AND starts_with(key, %s) ORDER BY key",
                (kind, prefix),
            ).fetchall()
        return [(str(k), dict(b)) for k, b in rows if isinstance(b, dict)]

    def stamp(self, kind: str, key: str) -> float:
        with self._run() as conn:
            row = conn.execute(
                "SELECT stamp FROM keizoku_store.documents WHERE kind=%s AND key=%s", (kind, key)
            ).fetchone()
        return 0.0 if row is None else float(row[0])

    # ------------------------------------------------------------------ lines

    def where(self, stream: str) -> str:
        return f"{self.safe_url} (keizoku_store.lines, stream {stream!r})"

    def append_chained(self, stream: str, build: Callable[[str], str]) -> str:
        check_path(stream, "stream")
        with self._run() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(f"stream/{stream}"),))
            row = conn.execute(
                "SELECT seq, line FROM keizoku_store.lines WHERE stream=%s "
                "ORDER BY seq DESC LIMIT 1",
                (stream,),
            ).fetchone()
            seq, prev = (0, GENESIS) if row is None else (int(row[0]), line_hash(row[1]))
            line = build(prev).rstrip("\n")
            conn.execute(
                "INSERT INTO keizoku_store.lines (stream, seq, line) VALUES (%s, %s, %s)",
                (stream, seq + 1, line),
            )
            conn.execute(
                "INSERT INTO keizoku_store.heads (stream, count, hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (stream) DO UPDATE SET count=EXCLUDED.count, hash=EXCLUDED.hash",
                (stream, seq + 1, line_hash(line)),
            )
        return line + "\n"

    def append(self, stream: str, line: str) -> None:
        check_path(stream, "stream")
        with self._run() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(f"stream/{stream}"),))
            conn.execute(
                "INSERT INTO keizoku_store.lines (stream, seq, line) SELECT %s, "
                "COALESCE(MAX(seq), 0) + 1, %s FROM keizoku_store.lines WHERE stream=%s",
                (stream, line.rstrip("\n"), stream),
            )

    def lines(self, stream: str) -> list[str]:
        with self._run() as conn:
            rows = conn.execute(
                "SELECT line FROM keizoku_store.lines WHERE stream=%s ORDER BY seq", (stream,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def head(self, stream: str) -> tuple[int, str] | None:
        with self._run() as conn:
            row = conn.execute(
                "SELECT count, hash FROM keizoku_store.heads WHERE stream=%s", (stream,)
            ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    # ------------------------------------------------------------------ locks

    @contextmanager
    def lock(self, name: str, wait_s: float | None = None) -> Iterator[None]:
        check_path(name, "lock name")
        conn = self._connect()  # its own session: closing it releases the lock
        try:
            key = _lock_id(f"lock/{name}")
            if wait_s is None:
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            else:
                deadline = time.monotonic() + wait_s
                while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
                    if time.monotonic() >= deadline:
                        raise ConflictError(
                            f"Another process has held the lock {name!r} in {self.safe_url} "
                            f"for over {wait_s:g} s. Wait for the other keizoku command to "
                            "finish, or stop it; then run the command again."
                        )
                    time.sleep(0.05)
            yield
        finally:
            conn.close()

    # ------------------------------------------------------------------ keys and users

    def add_key(self, row: KeyRow) -> bool:
        with self._run() as conn:
            cur = conn.execute(
                f"INSERT INTO keizoku_store.keys ({_KEY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT DO NOTHING",
                (row.name, row.role, row.user, row.token_sha256, row.created_at, row.revoked),
            )
        return cur.rowcount > 0

    def keys(self) -> list[KeyRow]:
        with self._run() as conn:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM keizoku_store.keys ORDER BY created_at, name"
            ).fetchall()
        return [_key_row(r) for r in rows]

    def key_by_hash(self, token_sha256: str) -> KeyRow | None:
        with self._run() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM keizoku_store.keys WHERE token_sha256=%s",
                (token_sha256,),
            ).fetchone()
        return None if row is None else _key_row(row)

    def revoke_key(self, name: str) -> bool:
        with self._run() as conn:
            cur = conn.execute("UPDATE keizoku_store.keys SET revoked=TRUE WHERE name=%s", (name,))
        return cur.rowcount > 0

    def has_active_key(self) -> bool:
        with self._run() as conn:
            row = conn.execute(
                "SELECT 1 FROM keizoku_store.keys WHERE NOT revoked LIMIT 1"
            ).fetchone()
        return row is not None

    def set_groups(self, user: str, groups: list[str], updated_at: str) -> None:
        with self._run() as conn:
            conn.execute(
                'INSERT INTO keizoku_store.users ("user", groups, updated_at) VALUES (%s, %s, %s) '
                'ON CONFLICT ("user") DO UPDATE SET groups=EXCLUDED.groups, '
                "updated_at=EXCLUDED.updated_at",
                (user, json.dumps(groups), updated_at),
            )

    def groups(self, user: str) -> list[str] | None:
        with self._run() as conn:
            row = conn.execute(
                'SELECT groups FROM keizoku_store.users WHERE "user"=%s', (user,)
            ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def users(self) -> list[tuple[str, list[str], str]]:
        with self._run() as conn:
            rows = conn.execute(
                'SELECT "user", groups, updated_at FROM keizoku_store.users ORDER BY "user"'
            ).fetchall()
        return [(u, list(json.loads(g)), t) for u, g, t in rows]
