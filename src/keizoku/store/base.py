"""The store's primitives: small enough that two implementations can be checked alike.

- **documents**: a JSON object per (kind, key); ``key`` may hold ``/`` to group
  documents (``experiments`` uses ``<model>/<id>``). ``stamp`` changes with every write,
  so a reader can tell that a document changed without reading it.
- **lines**: append-only streams of text lines. A *chained* stream links each line to
  the sha256 of the one before (the caller builds the line from that hash, under the
  stream's lock) and keeps a head record (count and last hash); a plain one only appends.
- **locks**: named, exclusive across processes (and machines, for a shared store).
- **keys and users**: the API keys (only their sha256) and the users directory.

Names of streams, locks and document kinds are relative paths of plain segments
(``audit/churn``); the embedded store maps them onto files under ``KEIZOKU_HOME``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from keizoku.errors import UserInputError

__all__ = ["KeyRow", "Store", "check_path"]


@dataclass(frozen=True)
class KeyRow:
    """One API key as stored: never the token, only its sha256."""

    name: str
    role: str
    user: str | None
    token_sha256: str
    created_at: str
    revoked: bool


class Store(Protocol):
    """What every store offers; see the module docstring."""

    kind: str  # "embedded" or "postgresql"

    def describe(self) -> str:
        """Where the state lives, for messages (never a password)."""
        ...

    # documents
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...
    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None: ...
    def delete(self, kind: str, key: str) -> bool: ...
    def documents(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(key, document) of every readable document whose key starts with ``prefix``."""
        ...

    def stamp(self, kind: str, key: str) -> float:
        """A number that changes with every write of the document; 0.0 when absent."""
        ...

    # lines
    def append_chained(self, stream: str, build: Callable[[str], str]) -> str:
        """Under the stream's lock: ``line = build(sha256 of the last line)``, appended
        durably with the head record; returns the line."""
        ...

    def append(self, stream: str, line: str) -> None: ...
    def lines(self, stream: str) -> list[str]: ...
    def head(self, stream: str) -> tuple[int, str] | None:
        """(count, sha256 of the last line) of a chained stream; None when missing."""
        ...

    def where(self, stream: str) -> str:
        """The stream's location, for messages."""
        ...

    # locks
    def lock(self, name: str, wait_s: float | None = None) -> AbstractContextManager[None]:
        """Exclusive across processes; ConflictError after ``wait_s`` (None: wait)."""
        ...

    # keys and users
    def add_key(self, row: KeyRow) -> bool:
        """False when a key of that name exists already."""
        ...

    def keys(self) -> list[KeyRow]: ...
    def key_by_hash(self, token_sha256: str) -> KeyRow | None: ...
    def revoke_key(self, name: str) -> bool: ...
    def has_active_key(self) -> bool: ...
    def set_groups(self, user: str, groups: list[str], updated_at: str) -> None: ...
    def groups(self, user: str) -> list[str] | None: ...
    def users(self) -> list[tuple[str, list[str], str]]: ...


def check_path(name: str, what: str = "store path") -> list[str]:
    """The segments of a relative store name; UserInputError for anything that could escape."""
    parts = name.split("/")
    for part in parts:
        if not part or part in (".", "..") or part.startswith(".") or "\\" in part:
            raise UserInputError(f"The {what} {name!r} is not a plain relative name.")
    return parts
