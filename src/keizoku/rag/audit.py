"""Append-only audit log of questions and searches: ``home()/rag/audit/audit.jsonl``.

One JSON object a line: time, action (ask/search), collection, user, key name, the
question, the mode and the sources cited. Lines are only ever appended.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keizoku.home import append_durably, home

__all__ = ["audit_path", "record", "read"]


def audit_path() -> Path:
    return home() / "rag" / "audit" / "audit.jsonl"


def record(
    action: str,
    collection: str,
    user: str | None,
    query: str,
    cited: list[str],
    key_name: str | None = None,
    mode: str | None = None,
) -> None:
    """Append one event (fsynced, so a crash does not lose an answered question)."""
    event: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "action": action, "collection": collection, "user": user, "key_name": key_name,
        "query": query, "mode": mode, "cited": cited,
    }  # fmt: skip
    line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
    append_durably(audit_path(), line, mode=0o600)


def read(
    collection: str | None = None, user: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Events, oldest first, optionally filtered; ``limit`` keeps the most recent ones."""
    path = audit_path()
    if not path.is_file():
        return []
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            event = json.loads(line)
            if collection and event.get("collection") != collection:
                continue
            if user and event.get("user") != user:
                continue
            events.append(event)
    return events[-limit:] if limit else events
