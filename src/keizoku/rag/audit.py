"""Append-only audit log of questions and searches: the store's stream ``rag/audit/audit``.

In the embedded store that is ``home()/rag/audit/audit.jsonl`` (appended under an
``flock``, ``fsync``ed); in PostgreSQL, rows of ``keizoku.lines``. One JSON object a
line: time, action (ask/search), collection, user, key name, the question, the mode and
the sources cited. Lines are only ever appended.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keizoku.home import home
from keizoku.store import store_from_env

__all__ = ["audit_path", "record", "read"]

STREAM = "rag/audit/audit"


def audit_path() -> Path:
    """The embedded store's file of the stream."""
    return home() / f"{STREAM}.jsonl"


def record(
    action: str,
    collection: str,
    user: str | None,
    query: str,
    cited: list[str],
    key_name: str | None = None,
    mode: str | None = None,
) -> None:
    """Append one event (durably, so a crash does not lose an answered question)."""
    event: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "action": action, "collection": collection, "user": user, "key_name": key_name,
        "query": query, "mode": mode, "cited": cited,
    }  # fmt: skip
    store_from_env().append(STREAM, json.dumps(event, ensure_ascii=False))


def read(
    collection: str | None = None, user: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Events, oldest first, optionally filtered; ``limit`` keeps the most recent ones."""
    events = []
    for line in store_from_env().lines(STREAM):
        if not line.strip():
            continue
        event = json.loads(line)
        if collection and event.get("collection") != collection:
            continue
        if user and event.get("user") != user:
            continue
        events.append(event)
    return events[-limit:] if limit else events
