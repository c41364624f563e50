"""Heartbeats: every running server says which versions it serves, so the registry can check.

Each server process writes the store document ``servers/<host>-<pid>`` (in the embedded
store ``home()/servers/<host>-<pid>.json``, atomically: a reader never sees half a file;
with ``KEIZOKU_STORE``, a row every server and command sharing the database reads) at
startup, at the next poll tick after what it says changes, and at least every
``interval_s`` seconds (the poll interval, or about a second for faster polls: an unchanged
beat is not rewritten more often, ``keizoku.serving.app.beat_ticks``)::

    {"pid": 4242, "host": "build-1", "port": 8000, "bind": "127.0.0.1",
     "started": 1796000000.0, "beat": 1796000042.5, "interval_s": 5.0, "discover": true,
     "models": {"churn": {"variants": {"champion": 3, "challenger": 4},
                          "deployment": {...}, "requests": {"4": {"total": 120, "errors": 0}}}}}

A beat is *live* while its process exists (checked for beats of this host) and it is at
most ``STALE_BEATS`` intervals old; older or orphaned beats are ignored (and removed by
``live_beats(prune=True)``). ``keizoku status`` and the bounded wait after ``deploy``,
``promote`` and ``rollback`` read them: ``disagreements`` names every live server whose
variants differ from what the registry and the deployment say it should serve.
``discover`` marks a server started without ``--model``: it serves every registered model
with a champion, so it is waited for on a model it does not serve yet (decision 0028).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keizoku.errors import KeizokuError
from keizoku.home import home
from keizoku.names import slug
from keizoku.store import store_from_env

__all__ = [
    "MAX_WAIT_S",
    "MIN_WAIT_S",
    "STALE_BEATS",
    "Beat",
    "beat_path",
    "disagreements",
    "expected_variants",
    "live_beats",
    "remove_beat",
    "servers_of",
    "snapshot",
    "wait_bound",
    "wait_floor",
    "wait_for_servers",
    "write_beat",
]

STALE_BEATS = 3  # a beat older than this many intervals belongs to a dead or stuck server


@dataclass(frozen=True)
class Beat:
    """One server's last report."""

    pid: int
    host: str
    port: int | None
    bind: str
    started: float
    beat: float
    interval_s: float
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    discover: bool = False  # started without --model: picks up every model with a champion

    @property
    def label(self) -> str:
        where = f"{self.bind}:{self.port}" if self.port else self.bind
        return f"{self.host} pid {self.pid} ({where})"

    def variants(self, model: str) -> dict[str, int] | None:
        entry = self.models.get(model)
        if entry is None:
            return None
        return {str(k): int(v) for k, v in (entry.get("variants") or {}).items()}

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "label": self.label}


KIND = "servers"


def servers_dir() -> Path:
    return home() / KIND


def _beat_key(pid: int | None = None, host: str | None = None) -> str:
    return f"{slug(host or socket.gethostname())}-{pid or os.getpid()}"


def beat_path(pid: int | None = None, host: str | None = None) -> Path:
    """The embedded store's file of a beat."""
    return servers_dir() / f"{_beat_key(pid, host)}.json"


def snapshot(model_set: Any) -> dict[str, dict[str, Any]]:
    """What a ``ModelSet`` serves now, per model (variants, deployment, request counts)."""
    out: dict[str, dict[str, Any]] = {}
    counts = _request_counts(model_set.metrics)
    for name, served in list(model_set.models.items()):
        out[name] = {
            "variants": served.versions(),
            "deployment": served.deployment.model_dump(),
            "requests": counts.get(name, {}),
        }
    return out


def _request_counts(metrics: Any) -> dict[str, dict[str, dict[str, int]]]:
    """model → version → {"total", "errors" (5xx)} from the server's request counters."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for labels, n in list(getattr(metrics, "requests", {}).items()):
        d = dict(labels)
        version = d.get("version", "-")
        if version in ("-", "mixed"):
            continue
        slot = out.setdefault(d.get("model", ""), {}).setdefault(version, {"total": 0, "errors": 0})
        slot["total"] += n
        if int(d.get("status", "200")) >= 500:
            slot["errors"] += n
    return out


def write_beat(
    model_set: Any, *, port: int | None, bind: str, started: float, interval_s: float
) -> str:
    """Write this process's beat; returns where (for messages)."""
    data = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "port": port,
        "bind": bind,
        "started": started,
        "beat": time.time(),
        "interval_s": interval_s,
        "discover": bool(getattr(model_set, "discovers", False)),
        "models": snapshot(model_set),
    }
    store = store_from_env()
    store.put(KIND, _beat_key(), json.loads(json.dumps(data, default=str)))
    return f"{store.describe()}, {KIND}/{_beat_key()}"


def remove_beat() -> None:
    """On a clean shutdown: this server no longer serves anything."""
    with contextlib.suppress(OSError, KeizokuError):  # the store may be gone at shutdown
        store_from_env().delete(KIND, _beat_key())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(data: dict[str, Any]) -> Beat | None:
    try:
        return Beat(
            pid=int(data["pid"]), host=str(data["host"]), port=data.get("port"),
            bind=str(data.get("bind", "")), started=float(data["started"]),
            beat=float(data["beat"]), interval_s=float(data["interval_s"]),
            models=dict(data.get("models") or {}),
            discover=bool(data.get("discover", False)),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


def _is_live(beat: Beat, now: float, here: str) -> bool:
    if now - beat.beat > STALE_BEATS * max(beat.interval_s, 0.1):
        return False
    return beat.host != here or _alive(beat.pid)


def live_beats(*, now: float | None = None, prune: bool = False) -> list[Beat]:
    """Beats of servers that are running now (see the module docstring), oldest first."""
    store = store_from_env()
    now = now or time.time()
    here = socket.gethostname()
    out: list[Beat] = []
    for key, data in store.documents(KIND):
        beat = _read(data)
        if beat is not None and _is_live(beat, now, here):
            out.append(beat)
        elif prune:
            with contextlib.suppress(OSError):
                store.delete(KIND, key)
    return sorted(out, key=lambda b: b.started)


def expected_variants(name: str) -> dict[str, int]:
    """What every server serving ``name`` should serve now (deployment + registry)."""
    from keizoku.lifecycle.deployment import load_deployment, served_versions

    return served_versions(name, load_deployment(name))


def disagreements(
    name: str, beats: list[Beat], expected: dict[str, int]
) -> list[tuple[Beat, dict[str, int]]]:
    """The live servers that should serve ``name`` but not exactly ``expected`` (with what
    they serve: ``{}`` for a discovering server that has not picked ``name`` up yet)."""
    out = []
    for beat in beats:
        served = beat.variants(name)
        if served is None and beat.discover:
            served = {}
        if served is not None and served != expected:
            out.append((beat, served))
    return out


def _serving(name: str, beat: Beat) -> bool:
    """Should ``beat``'s server serve ``name``? (It does, or it discovers every model.)"""
    return beat.discover or beat.variants(name) is not None


MIN_WAIT_S = 15.0  # the default bound's floor: loading a version takes seconds on a busy machine
MAX_WAIT_S = 60.0  # the default bound's ceiling


def servers_of(name: str) -> list[Beat]:
    """The live servers of ``name``: those that serve it, and those started without
    ``--model`` (they pick a model with a new champion up at their next poll)."""
    return [b for b in live_beats() if _serving(name, b)]


def wait_floor(beats: list[Beat]) -> float:
    """The shortest wait that lets each of ``beats``' servers answer one change: a registry
    poll, then the beat that reports it (two intervals of the slowest), plus 1 s."""
    return 2 * max([b.interval_s for b in beats], default=0.0) + 1.0


def wait_bound(beats: list[Beat], asked: float | None = None) -> float:
    """How long to wait for ``beats``' servers: ``asked`` (``--wait-timeout``) but at least
    ``wait_floor``; by default three intervals of the slowest server, 15 s to 60 s."""
    if asked is not None:
        return max(asked, wait_floor(beats))
    slowest = max([b.interval_s for b in beats], default=0.0)
    return min(max(3 * slowest + 1.0, MIN_WAIT_S), MAX_WAIT_S)


def wait_for_servers(
    name: str, *, timeout_s: float | None = None, poll_s: float = 0.2
) -> tuple[dict[str, int], list[Beat], list[tuple[Beat, dict[str, int]]]]:
    """Wait (bounded) until every live server of ``name`` (``servers_of``) serves what it
    should; it ends as soon as they all do.

    The bound is ``timeout_s`` as given, else ``wait_bound``'s default. Returns (expected,
    the live servers serving ``name``, those that still disagree at the end).
    """
    expected = expected_variants(name)
    if timeout_s is None:
        timeout_s = wait_bound(servers_of(name))
    deadline = time.monotonic() + timeout_s
    while True:
        beats = servers_of(name)
        late = disagreements(name, beats, expected)
        if not late or time.monotonic() >= deadline:
            return expected, beats, late
        time.sleep(poll_s)
