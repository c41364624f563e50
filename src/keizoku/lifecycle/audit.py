"""The audit log: every alias move, gate verdict and retraining, append-only.

One JSON object per line in ``home()/audit/<model>.jsonl``. Each append takes an
exclusive ``flock`` on the file, writes one line and ``fsync``s before returning,
so an entry that was acknowledged survives a crash and concurrent writers never
interleave. Entries are never rewritten.

Fields: ``ts`` (epoch s), ``time`` (ISO, UTC), ``model``, ``action``
(``promote``, ``promote_refused``, ``rollback``, ``retrain``, ``gate``,
``abtest``, ...), ``actor`` (OS user or API key name), ``reason``, ``version``,
``previous``, ``forced`` and ``evidence`` (gate results, test statistics).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import time
from pathlib import Path
from typing import Any

from keizoku.home import home

__all__ = ["record", "read", "audit_path", "default_actor"]


def audit_path(model: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model) or "_"
    return home() / "audit" / f"{safe}.jsonl"


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
    """Append one entry durably and return it."""
    now = time.time()
    entry = {
        "ts": now,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "model": model,
        "action": action,
        "actor": actor or default_actor(),
        "reason": reason,
        "version": version,
        "previous": previous,
        "forced": forced,
        "evidence": evidence or {},
    }
    path = audit_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, default=_default, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return entry


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dict__"):
        return value.__dict__
    return str(value)


def read(model: str, *, actions: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every entry for ``model``, oldest first (a torn last line is skipped)."""
    path = audit_path(model)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if actions is None or entry.get("action") in actions:
            out.append(entry)
    return out
