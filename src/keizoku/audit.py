"""The audit log: every state change of a model, append-only and tamper-evident.

One JSON object per line in ``home()/audit/<model>.jsonl``. Each append takes an
exclusive ``flock`` on the file, writes one line and ``fsync``s before returning,
so an entry that was acknowledged survives a crash and concurrent writers never
interleave. Entries are never rewritten.

Fields: ``ts`` (epoch s), ``time`` (ISO, UTC), ``model``, ``action``
(``register``, ``gate``, ``admit``, ``promote``, ``promote_refused``, ``rollback``,
``retrain``, ``abtest``, ...), ``actor`` (the OS user for the CLI, ``key:<name>`` for
REST calls), ``reason``, ``version``, ``previous``, ``forced``, ``evidence`` (gate
results, test statistics) and ``prev_hash``.

Tamper evidence: ``prev_hash`` is the sha256 of the previous line (64 zeros for the
first), and ``<model>.head`` holds the entry count and the sha256 of the last line,
rewritten atomically with each append. ``verify(model)`` walks the chain: an edited
entry breaks the link of the next one (or the head, for the last), a deleted entry
breaks a link, a deleted last entry no longer matches the head. This detects edits
made without keizoku; it is not a signature (someone who rewrites the whole chain and
the head is not detected).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from keizoku.errors import IntegrityError
from keizoku.home import atomic_write_text, file_lock, home
from keizoku.names import safe_child

__all__ = ["record", "read", "verify", "audit_path", "default_actor", "GENESIS", "KEYS"]

GENESIS = "0" * 64
KEYS = "_keys"  # the stream of API key changes (a model name cannot start with "_")


def audit_path(model: str) -> Path:
    folder = home() / "audit"
    if model == KEYS:
        return folder / f"{KEYS}.jsonl"
    return safe_child(folder, model, ".jsonl")


def _head_path(model: str) -> Path:
    return audit_path(model).with_suffix(".head")


def default_actor() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


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


def _last_hash(path: Path, model: str) -> tuple[str, int]:
    """(sha256 of the last line, number of lines); the head gives the count when it agrees.

    The file is the truth: after a crash between writing a line and its head record, the
    chain continues from the line actually written.
    """
    last = _last_line(path) if path.exists() else b""
    if not last:
        return GENESIS, 0
    digest = _line_hash(last)
    try:
        data = json.loads(_head_path(model).read_text())
        if data["hash"] == digest:
            return digest, int(data["count"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return digest, len(path.read_bytes().splitlines())


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
    path = audit_path(model)
    with file_lock(path) as fd:
        prev, count = _last_hash(path, model)
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
            "prev_hash": prev,
        }
        line = (json.dumps(entry, default=_default, separators=(",", ":")) + "\n").encode()
        os.write(fd, line)
        os.fsync(fd)
        head = {"count": count + 1, "hash": _line_hash(line)}
        atomic_write_text(_head_path(model), json.dumps(head))
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


def verify(model: str) -> int:
    """Number of entries when the chain and head are intact; IntegrityError naming the
    first bad entry (1-based line number) otherwise."""
    path, head = audit_path(model), _head_path(model)
    lines = path.read_bytes().splitlines() if path.exists() else []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            link = entry["prev_hash"]
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(
                f"Audit log {path}: entry {number} is not a chained entry (unreadable or "
                "without prev_hash): it was edited or written outside keizoku."
            ) from None
        if link != prev:
            raise IntegrityError(
                f"Audit log {path}: entry {number} ({entry.get('action')} at "
                f"{entry.get('time')}) does not follow entry {number - 1}: an entry before it "
                "was edited or deleted."
            )
        prev = _line_hash(line)
    if not lines and not head.exists():
        return 0
    try:
        data = json.loads(head.read_text())
        count, last = int(data["count"]), str(data["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        raise IntegrityError(
            f"Audit log {path}: its head record {head} is missing or unreadable; "
            "the log cannot be checked for a deleted last entry."
        ) from None
    if count != len(lines) or last != prev:
        raise IntegrityError(
            f"Audit log {path}: entry {len(lines)} (the last) does not match the head record "
            f"({count} entries recorded, {len(lines)} found): the last entry was edited or "
            "deleted."
        )
    return len(lines)
