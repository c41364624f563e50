"""The default store: files and SQLite under ``KEIZOKU_HOME``, the layout keizoku always wrote.

- a document ``(kind, key)`` is ``<home>/<kind>/<key>.json``, written atomically;
- a stream is ``<home>/<stream>.jsonl``, appended under an ``flock`` and ``fsync``ed; a
  chained stream's head record is ``<home>/<stream>.head``, rewritten atomically;
- a lock ``name`` is an ``flock`` on ``<home>/<name>``;
- keys and users are two tables of ``<home>/auth.db`` (SQLite).

The home is looked up on every call, so a process that changes ``KEIZOKU_HOME`` (a test)
uses the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keizoku.home import atomic_write_text, file_lock, home
from keizoku.store.base import KeyRow, check_path

__all__ = ["GENESIS", "EmbeddedStore", "line_hash"]

GENESIS = "0" * 64

_AUTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    user TEXT,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    user TEXT PRIMARY KEY,
    groups TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""
_KEY_COLUMNS = "name, role, user, token_sha256, created_at, revoked"


def line_hash(line: str | bytes) -> str:
    """sha256 of one line without its newline: the link a chained stream keeps."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    return hashlib.sha256(data.rstrip(b"\n")).hexdigest()


def _last_line(path: Path) -> bytes:
    """The last line of ``path`` (b"" when empty), read from the end."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        chunk = b""
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + chunk
            if chunk.rstrip(b"\n").count(b"\n") >= 1:
                break
    lines = chunk.rstrip(b"\n").split(b"\n")
    return lines[-1] if lines and lines[-1] else b""


def _file(name: str, suffix: str, what: str) -> Path:
    """``<home>/<name><suffix>`` for a plain relative ``name``."""
    *folders, last = check_path(name, what)
    return home().joinpath(*folders, last + suffix)


def _key_row(row: tuple[Any, ...]) -> KeyRow:
    return KeyRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


class EmbeddedStore:
    """Files and SQLite under the home (see the module docstring)."""

    kind = "embedded"

    def describe(self) -> str:
        return f"the embedded store in {home()}"

    # ------------------------------------------------------------------ documents

    def _doc(self, kind: str, key: str) -> Path:
        return _file(f"{kind}/{key}", ".json", "document")

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._doc(kind, key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            raise ValueError(f"{path} holds no JSON object")
        return data

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        atomic_write_text(self._doc(kind, key), json.dumps(doc, indent=2, default=str) + "\n")

    def delete(self, kind: str, key: str) -> bool:
        try:
            self._doc(kind, key).unlink()
        except FileNotFoundError:
            return False
        return True

    def documents(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        folder = home().joinpath(*check_path(kind, "document kind"))
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.rglob("*.json")):
            key = path.relative_to(folder).with_suffix("").as_posix()
            if not key.startswith(prefix) or any(p.startswith(".") for p in key.split("/")):
                continue
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    out.append((key, data))
        return out

    def stamp(self, kind: str, key: str) -> float:
        try:
            return self._doc(kind, key).stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    # ------------------------------------------------------------------ lines

    def _stream(self, stream: str) -> Path:
        return _file(stream, ".jsonl", "stream")

    def where(self, stream: str) -> str:
        return str(self._stream(stream))

    def append_chained(self, stream: str, build: Callable[[str], str]) -> str:
        path = self._stream(stream)
        with file_lock(path) as fd:
            prev, count = self._last(path)
            line = build(prev).rstrip("\n") + "\n"
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
            head = {"count": count + 1, "hash": line_hash(line)}
            atomic_write_text(path.with_suffix(".head"), json.dumps(head))
        return line

    def _last(self, path: Path) -> tuple[str, int]:
        """(sha256 of the last line, number of lines); the head gives the count when it
        agrees. The file is the truth: after a crash between a line and its head record,
        the chain continues from the line actually written."""
        last = _last_line(path) if path.exists() else b""
        if not last:
            return GENESIS, 0
        digest = line_hash(last)
        try:
            data = json.loads(path.with_suffix(".head").read_text())
            if data["hash"] == digest:
                return digest, int(data["count"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return digest, len(path.read_bytes().splitlines())

    def append(self, stream: str, line: str) -> None:
        path = self._stream(stream)
        with file_lock(path, 0o600) as fd:
            os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
            os.fsync(fd)

    def lines(self, stream: str) -> list[str]:
        path = self._stream(stream)
        if not path.is_file():
            return []
        return path.read_bytes().decode("utf-8").splitlines()

    def head(self, stream: str) -> tuple[int, str] | None:
        try:
            data = json.loads(self._stream(stream).with_suffix(".head").read_text())
            return int(data["count"]), str(data["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------------ locks

    @contextmanager
    def lock(self, name: str, wait_s: float | None = None) -> Iterator[None]:
        with file_lock(home().joinpath(*check_path(name, "lock name")), wait_s=wait_s):
            yield

    # ------------------------------------------------------------------ keys and users

    def _auth_db(self) -> Path:
        return home() / "auth.db"

    @contextmanager
    def _auth(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._auth_db(), timeout=30, isolation_level=None)
        try:
            conn.executescript(_AUTH_SCHEMA)
            yield conn
        finally:
            conn.close()

    def add_key(self, row: KeyRow) -> bool:
        with self._auth() as conn:
            try:
                conn.execute(
                    f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES (?,?,?,?,?,?)",
                    (row.name, row.role, row.user, row.token_sha256, row.created_at,
                     int(row.revoked)),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                return False
        return True

    def keys(self) -> list[KeyRow]:
        with self._auth() as conn:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY created_at, name"
            ).fetchall()
        return [_key_row(r) for r in rows]

    def key_by_hash(self, token_sha256: str) -> KeyRow | None:
        with self._auth() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM keys WHERE token_sha256=?", (token_sha256,)
            ).fetchone()
        return None if row is None else _key_row(row)

    def revoke_key(self, name: str) -> bool:
        with self._auth() as conn:
            return conn.execute("UPDATE keys SET revoked=1 WHERE name=?", (name,)).rowcount > 0

    def has_active_key(self) -> bool:
        if not self._auth_db().is_file():  # reading never creates the database
            return False
        with self._auth() as conn:
            return conn.execute("SELECT 1 FROM keys WHERE revoked=0 LIMIT 1").fetchone() is not None

    def set_groups(self, user: str, groups: list[str], updated_at: str) -> None:
        with self._auth() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO users (user, groups, updated_at) VALUES (?, ?, ?)",
                (user, json.dumps(groups), updated_at),
            )

    def groups(self, user: str) -> list[str] | None:
        if not self._auth_db().is_file():
            return None
        with self._auth() as conn:
            row = conn.execute("SELECT groups FROM users WHERE user=?", (user,)).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def users(self) -> list[tuple[str, list[str], str]]:
        with self._auth() as conn:
            rows = conn.execute(
                "SELECT user, groups, updated_at FROM users ORDER BY user"
            ).fetchall()
        return [(u, list(json.loads(g)), t) for u, g, t in rows]
