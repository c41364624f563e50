"""The audit log: every state change of a model, append-only and tamper-evident.

One JSON object per line in the store's chained stream ``audit/<model>``
(:mod:`keizoku.store`): in the embedded store ``home()/audit/<model>.jsonl``, appended
under an exclusive ``flock`` and ``fsync``ed before returning; in PostgreSQL one row a
line, appended in a transaction holding the stream's advisory lock. Either way an
acknowledged entry survives a crash and concurrent writers (on any machine sharing the
store) keep one chain. Entries are never rewritten.

Fields: ``ts`` (epoch s), ``time`` (ISO, UTC), ``model``, ``action``
(``register``, ``gate``, ``admit``, ``promote``, ``promote_refused``, ``rollback``,
``retrain``, ``abtest``, ...), ``actor`` (the OS user for the CLI, ``key:<name>`` for
REST calls), ``reason``, ``version``, ``previous``, ``forced``, ``evidence`` (gate
results, test statistics) and ``prev_hash``.

Tamper evidence: ``prev_hash`` is the sha256 of the previous line (64 zeros for the
first), and the head record (``<model>.head`` in the embedded store) holds the entry
count and the sha256 of the last line, rewritten with each append. ``verify(model)``
walks the chain: an edited entry breaks the link of the next one (or the head, for the
last), a deleted entry breaks a link, a deleted last entry no longer matches the head.
This detects edits made without keizoku; it is not a signature (someone who rewrites
the whole chain and the head is not detected).
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Any

from keizoku.errors import IntegrityError
from keizoku.home import home
from keizoku.names import check_name, safe_child
from keizoku.store import store_from_env
from keizoku.store.embedded import GENESIS, line_hash

__all__ = ["record", "read", "verify", "audit_path", "default_actor", "GENESIS", "KEYS"]

KEYS = "_keys"  # the stream of API key changes (a model name cannot start with "_")


def audit_path(model: str) -> Path:
    """The embedded store's file of ``model``'s chain (its ``.lock`` is the model lock)."""
    folder = home() / "audit"
    if model == KEYS:
        return folder / f"{KEYS}.jsonl"
    return safe_child(folder, model, ".jsonl")


def _stream(model: str) -> str:
    return f"audit/{model if model == KEYS else check_name(model)}"


def default_actor() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def record(
    model: str,
    action: str,
    *,
    actor: str | None = None,
    reason: str = "",
    version: int | None = None,
    previous: int | None = None,
    forced: bool = False,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one entry durably (chained to the previous one) and return it."""
    entry: dict[str, Any] = {}

    def build(prev: str) -> str:
        now = time.time()
        entry.update(
            ts=now, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), model=model,
            action=action, actor=actor or default_actor(), reason=reason, version=version,
            previous=previous, forced=forced, evidence=evidence or {}, prev_hash=prev,
        )  # fmt: skip
        return json.dumps(entry, default=_default, separators=(",", ":"))

    store_from_env().append_chained(_stream(model), build)
    return entry


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dict__"):
        return value.__dict__
    return str(value)


def read(model: str, actions: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every entry for ``model``, oldest first (a torn last line is skipped)."""
    out = []
    for line in store_from_env().lines(_stream(model)):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if actions is None or entry.get("action") in actions:
            out.append(entry)
    return out


def verify(model: str) -> int:
    """Number of entries when the chain and head are intact; IntegrityError naming the
    first bad entry (1-based line number) otherwise."""
    store, stream = store_from_env(), _stream(model)
    where, lines = store.where(stream), store.lines(stream)
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            link = entry["prev_hash"]
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(
                f"Audit log {where}: entry {number} is not a chained entry (unreadable or "
                "without prev_hash): it was edited or written outside keizoku."
            ) from None
        if link != prev:
            raise IntegrityError(
                f"Audit log {where}: entry {number} ({entry.get('action')} at "
                f"{entry.get('time')}) does not follow entry {number - 1}: an entry before it "
                "was edited or deleted."
            )
        prev = line_hash(line)
    head = store.head(stream)
    if not lines and head is None:
        return 0
    if head is None:
        raise IntegrityError(
            f"Audit log {where}: its head record for this log is missing or unreadable; "
            "the log cannot be checked for a deleted last entry."
        )
    count, last = head
    if count != len(lines) or last != prev:
        raise IntegrityError(
            f"Audit log {where}: entry {len(lines)} (the last) does not match the head record "
            f"({count} entries recorded, {len(lines)} found): the last entry was edited or "
            "deleted."
        )
    return len(lines)
