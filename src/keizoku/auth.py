"""API keys and the users directory, in the store (:mod:`keizoku.store`).

The embedded store keeps them in SQLite at ``home()/auth.db``; with ``KEIZOKU_STORE``
set, in the ``keizoku.keys`` and ``keizoku.users`` tables that every server shares, so a
key created or revoked on one machine counts on all of them at the next request.

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
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keizoku import audit
from keizoku.errors import AuthError, ForbiddenError, NotFoundError, UserInputError
from keizoku.store import KeyRow, store_from_env

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


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role, and the user with that user's groups."""

    key_name: str
    role: str
    user: str | None
    groups: tuple[str, ...]

    def has_role(self, role: str) -> bool:
        return self.role == "admin" or self.role == role


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
    if not store_from_env().add_key(KeyRow(name, role, user, _hash(token), _now(), False)):
        raise UserInputError(
            f"A key named {name!r} already exists. Pick another --name, or revoke it first "
            f"with 'keizoku keys revoke {name}'."
        )
    audit.record(audit.KEYS, "key_create", reason=f"key {name!r} ({role})",
                 evidence={"key": name, "role": role, "user": user})  # fmt: skip
    return token


def list_keys() -> list[dict[str, Any]]:
    """Keys without their hashes: name, role, user, created_at, revoked."""
    return [
        {"name": k.name, "role": k.role, "user": k.user, "created_at": k.created_at,
         "revoked": k.revoked}
        for k in store_from_env().keys()
    ]  # fmt: skip


def revoke_key(name: str) -> None:
    if not store_from_env().revoke_key(name):
        raise NotFoundError(f"No key named {name!r}. List keys with 'keizoku keys list'.")
    audit.record(audit.KEYS, "key_revoke", reason=f"key {name!r}", evidence={"key": name})


def keys_configured() -> bool:
    """True when at least one key that is not revoked exists."""
    return store_from_env().has_active_key()


def set_user_groups(user: str, groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Replace ``user``'s groups (takes effect on the next request)."""
    _check_name(user, "User", "USER")
    clean = tuple(sorted({_check_name(g, "Group", "--group") for g in groups}))
    store_from_env().set_groups(user, list(clean), _now())
    return clean


def get_user_groups(user: str | None) -> tuple[str, ...]:
    """The groups of ``user`` in the directory (none for an unknown or missing user)."""
    if not user:
        return ()
    return tuple(store_from_env().groups(user) or ())


def list_users() -> list[dict[str, Any]]:
    return [{"user": u, "groups": g, "updated_at": t} for u, g, t in store_from_env().users()]


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
    row = store_from_env().key_by_hash(digest)
    if row is None or not hmac.compare_digest(row.token_sha256, digest):
        raise AuthError("The API key is not valid. Check the key, or create a new one.")
    if row.revoked:
        raise AuthError(f"The API key {row.name!r} was revoked. Create a new one.")
    return Principal(row.name, row.role, row.user, get_user_groups(row.user))


def require_role(principal: Principal, role: str) -> Principal:
    if not principal.has_role(role):
        raise ForbiddenError(
            f"Key {principal.key_name!r} has role {principal.role!r}; this needs {role!r}. "
            f"Use a key created with --role {role}."
        )
    return principal
