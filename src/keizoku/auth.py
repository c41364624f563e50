"""API keys and the users directory, in SQLite at ``home()/auth.db``.

A key is a high-entropy random token shown once at creation; only its sha256 is
stored, and lookups compare hashes with ``hmac.compare_digest``. A key has a name, a
role (``predict`` or ``admin``; admin implies predict), an optional user, a creation
time and a revoked flag. The users directory maps a user to groups; it is read on
every ``authenticate`` so a change of groups takes effect on the next request.

CLI: ``keizoku keys create|list|revoke`` and ``keizoku users set|list`` (``keizoku.cli.keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keizoku import audit
from keizoku.errors import AuthError, ForbiddenError, NotFoundError, UserInputError
from keizoku.home import home

__all__ = [
    "ROLES",
    "Principal",
    "authenticate",
    "create_key",
    "get_user_groups",
    "keys_configured",
    "list_keys",
    "list_users",
    "require_role",
    "revoke_key",
    "set_user_groups",
    "token_from_headers",
]

ROLES = ("predict", "admin")
TOKEN_PREFIX = "kz_"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")

_SCHEMA = """
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


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role, and the user with that user's groups."""

    key_name: str
    role: str
    user: str | None
    groups: tuple[str, ...]

    def has_role(self, role: str) -> bool:
        return self.role == "admin" or self.role == role


def _db_path() -> Path:
    return home() / "auth.db"


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(_db_path(), timeout=30, isolation_level=None)
    conn.executescript(_SCHEMA)
    return conn


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(value: str, what: str, flag: str) -> str:
    if not _NAME.match(value or ""):
        raise UserInputError(
            f"{what} {value!r} is not valid. Use 1-128 letters, digits, '_', '.', '@', '+', '-' "
            f"({flag})."
        )
    return value


def create_key(name: str, role: str, user: str | None = None) -> str:
    """Create a key and return its token; the token is not stored and cannot be shown again."""
    _check_name(name, "Key name", "--name")
    if role not in ROLES:
        raise UserInputError(f"Role {role!r} is not valid. Use --role predict or --role admin.")
    if user is not None:
        _check_name(user, "User", "--user")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn = _connect()
    try:
        conn.execute(
            "INSERT INTO keys (name, role, user, token_sha256, created_at) VALUES (?,?,?,?,?)",
            (name, role, user, _hash(token), _now()),
        )
    except sqlite3.IntegrityError as exc:
        raise UserInputError(
            f"A key named {name!r} already exists. Pick another --name, or revoke it first "
            f"with 'keizoku keys revoke {name}'."
        ) from exc
    finally:
        conn.close()
    audit.record(audit.KEYS, "key_create", reason=f"key {name!r} ({role})",
                 evidence={"key": name, "role": role, "user": user})  # fmt: skip
    return token


def list_keys() -> list[dict[str, Any]]:
    """Keys without their hashes: name, role, user, created_at, revoked."""
    conn = _connect()
    try:
        rows = conn.execute(
            "SELECT name, role, user, created_at, revoked FROM keys ORDER BY created_at, name"
        ).fetchall()
    finally:
        conn.close()
    return [
        {"name": n, "role": r, "user": u, "created_at": c, "revoked": bool(v)}
        for n, r, u, c, v in rows
    ]


def revoke_key(name: str) -> None:
    conn = _connect()
    try:
        cur = conn.execute("UPDATE keys SET revoked=1 WHERE name=?", (name,))
    finally:
        conn.close()
    if cur.rowcount == 0:
        raise NotFoundError(f"No key named {name!r}. List keys with 'keizoku keys list'.")
    audit.record(audit.KEYS, "key_revoke", reason=f"key {name!r}", evidence={"key": name})


def keys_configured() -> bool:
    """True when at least one key that is not revoked exists."""
    if not _db_path().is_file():
        return False
    conn = _connect()
    try:
        return conn.execute("SELECT 1 FROM keys WHERE revoked=0 LIMIT 1").fetchone() is not None
    finally:
        conn.close()


def set_user_groups(user: str, groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Replace ``user``'s groups (takes effect on the next request)."""
    _check_name(user, "User", "USER")
    clean = tuple(sorted({_check_name(g, "Group", "--group") for g in groups}))
    conn = _connect()
    try:
        conn.execute(
            "INSERT OR REPLACE INTO users (user, groups, updated_at) VALUES (?, ?, ?)",
            (user, json.dumps(list(clean)), _now()),
        )
    finally:
        conn.close()
    return clean


def get_user_groups(user: str | None) -> tuple[str, ...]:
    """The groups of ``user`` in the directory (none for an unknown or missing user)."""
    if not user or not _db_path().is_file():
        return ()
    conn = _connect()
    try:
        row = conn.execute("SELECT groups FROM users WHERE user=?", (user,)).fetchone()
    finally:
        conn.close()
    return tuple(json.loads(row[0])) if row else ()


def list_users() -> list[dict[str, Any]]:
    conn = _connect()
    try:
        rows = conn.execute("SELECT user, groups, updated_at FROM users ORDER BY user").fetchall()
    finally:
        conn.close()
    return [{"user": u, "groups": json.loads(g), "updated_at": t} for u, g, t in rows]


def token_from_headers(headers: Any) -> str | None:
    """The API key of a request: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return str(value.strip())
    return headers.get("x-api-key") or None


def authenticate(token: str | None) -> Principal:
    """The principal of a valid, unrevoked key; AuthError otherwise (the token is never echoed)."""
    if not token:
        raise AuthError(
            "No API key given. Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
            "create one with 'keizoku keys create --role predict --name NAME'."
        )
    digest = _hash(token.strip())
    conn = _connect()
    try:
        row = conn.execute(
            "SELECT name, role, user, token_sha256, revoked FROM keys WHERE token_sha256=?",
            (digest,),
        ).fetchone()
    finally:
        conn.close()
    if row is None or not hmac.compare_digest(row[3], digest):
        raise AuthError("The API key is not valid. Check the key, or create a new one.")
    if row[4]:
        raise AuthError(f"The API key {row[0]!r} was revoked. Create a new one.")
    return Principal(row[0], row[1], row[2], get_user_groups(row[2]))


def require_role(principal: Principal, role: str) -> Principal:
    if not principal.has_role(role):
        raise ForbiddenError(
            f"Key {principal.key_name!r} has role {principal.role!r}; this needs {role!r}. "
            f"Use a key created with --role {role}."
        )
    return principal
