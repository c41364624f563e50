"""The lifecycle of a model version: its states, the allowed moves, one ``transition``.

::

                      ┌──────────────(first version only, audited)──────────────┐
                      │                                                         ▼
    registered ──gates──▶ gated-pass ──admit──▶ challenger ──promote──▶  champion
        │                   ▲   │                  │                       │   ▲
        │                   │   └─────promote──────┼───────────────────────┘   │
        │                   └──replaced by a newer─┘                replaced   │ rollback /
        └──gates──▶ gated-fail                                        ▼       │ promote
                                                                   archived ──┘
    (--force with a reason: registered | gated-fail → champion, audited as forced)

The state is derived from the aliases (``champion``, ``challenger``) and stored in the
version tag ``keizoku.state``; the gate verdict is the tag ``keizoku.gate``
(``passed``/``failed``). ``TRANSITIONS`` is the one table of allowed moves.

``transition`` is the only code that moves an alias or a state tag: under the model's
lock it checks the move against the table and its preconditions, moves aliases and tags,
and writes the audit entry; when any step fails it restores what it changed and
re-raises, so the registry is left as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from keizoku import audit
from keizoku.errors import ConflictError, GateError, UserInputError
from keizoku.names import check_name
from keizoku.store import store_from_env

__all__ = [
    "State",
    "TRANSITIONS",
    "GATE_TAG",
    "STATE_TAG",
    "REASONS_TAG",
    "FIRST_VERSION",
    "model_lock",
    "state_of",
    "states",
    "transition",
]

State = Literal["registered", "gated-pass", "gated-fail", "challenger", "champion", "archived"]

GATE_TAG = "keizoku.gate"
STATE_TAG = "keizoku.state"
REASONS_TAG = "keizoku.gate_reasons"
FIRST_VERSION = "first version, no champion to gate against"

# (from, to) → what the move means. Anything else is refused (ConflictError), except a
# forced promotion to champion, which needs a reason and is audited as forced.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("registered", "gated-pass"): "passed its gates",
    ("registered", "gated-fail"): "failed its gates",
    ("registered", "champion"): FIRST_VERSION,
    ("gated-fail", "gated-pass"): "passed its gates on a new run",
    ("gated-pass", "gated-fail"): "failed its gates on a new run",
    ("gated-pass", "challenger"): "admitted as challenger after passing its gates",
    ("gated-pass", "champion"): "promoted after passing its gates",
    ("challenger", "champion"): "promoted",
    ("challenger", "gated-pass"): "replaced as challenger by a newer version",
    ("champion", "archived"): "replaced as champion",
    ("archived", "champion"): "restored as champion",
}
TRAFFIC_STATES = ("challenger", "champion")

_local = threading.local()


@contextmanager
def model_lock(name: str) -> Iterator[None]:
    """Exclusive per-model lock across processes; re-entrant within a thread."""
    held: dict[str, int] = _local.__dict__.setdefault("held", {})
    if held.get(name):
        held[name] += 1
        try:
            yield
        finally:
            held[name] -= 1
        return
    with store_from_env().lock(f"audit/{check_name(name)}.lock"):  # shared with the store
        held[name] = 1
        try:
            yield
        finally:
            held.pop(name, None)


def _derive(version: int, tags: dict[str, str], aliases: dict[str, int]) -> str:
    if aliases.get("champion") == version:
        return "champion"
    if aliases.get("challenger") == version:
        return "challenger"
    stored = tags.get(STATE_TAG)
    if stored in ("archived", "gated-pass", "gated-fail", "registered"):
        return stored
    gate = tags.get(GATE_TAG)
    return {"passed": "gated-pass", "failed": "gated-fail"}.get(gate or "", "registered")


def may_answer(name: str, version: int, variant: str) -> None:
    """GateError unless ``name:version`` may answer live traffic as ``variant``.

    The serving side of "gates before traffic", independent of how an alias moved (even
    an alias set with MLflow's own client): a version answers only when it passed its
    gates, or answers as champion and was made champion by ``transition`` once (the first
    version or a forced promotion, both audited; ``archived`` is a former champion, which
    a rollback may restore). Versions registered before keizoku recorded states (no
    ``keizoku.state`` tag) keep serving as champion.
    """
    from keizoku.registry.models import get_version

    tags = get_version(f"{name}:{version}").tags
    stored, gate = tags.get(STATE_TAG), tags.get(GATE_TAG)
    if gate == "passed":
        return
    was_champion = stored in ("champion", "archived")  # admitted as champion once, audited
    if variant == "champion" and (was_champion or (stored is None and gate is None)):
        return
    raise GateError(
        f"Version {name}:{version} may not answer traffic as '{variant}': it has not passed "
        f"its gates (state {stored or 'unknown'}, gate {gate or 'never run'}). Gate it with "
        f"`keizoku promote {name} {version}` (which runs the gates) or retrain."
    )


def states(name: str) -> dict[int, str]:
    """version → state, for every version of ``name``."""
    from keizoku.registry.models import aliases, list_versions

    current = aliases(name)
    return {v.version: _derive(v.version, v.tags, current) for v in list_versions(name)}


def state_of(name: str, version: int) -> str:
    from keizoku.registry.models import aliases, get_version

    return _derive(version, get_version(f"{name}:{version}").tags, aliases(name))


class _Changes:
    """What one transition changed, so it can be undone."""

    def __init__(self, name: str, aliases_before: dict[str, int]) -> None:
        self.name = name
        self.aliases_before = aliases_before
        self.tags_before: dict[int, dict[str, str | None]] = {}
        self._read: dict[int, dict[str, str]] = {}  # each version's tags before its first change

    def tag(self, version: int, key: str, value: str | None) -> None:
        from keizoku.registry.models import delete_tag, get_version, set_tag

        if version not in self._read:
            self._read[version] = dict(get_version(f"{self.name}:{version}").tags)
        saved = self.tags_before.setdefault(version, {})
        if key not in saved:
            saved[key] = self._read[version].get(key)
        if value is None:
            if saved[key] is not None:
                delete_tag(self.name, version, key)
        else:
            set_tag(self.name, version, key, value)

    def undo(self) -> None:
        from keizoku.registry.models import aliases, delete_alias, delete_tag, set_alias, set_tag

        now = aliases(self.name)
        for alias, version in self.aliases_before.items():
            if now.get(alias) != version:
                set_alias(self.name, alias, version)
        for alias in set(now) - set(self.aliases_before):
            delete_alias(self.name, alias)
        for version, saved in self.tags_before.items():
            for key, value in saved.items():
                if value is None:
                    try:
                        delete_tag(self.name, version, key)
                    except Exception:  # noqa: BLE001 - the tag was never written
                        pass
                else:
                    set_tag(self.name, version, key, value)


def _had_champion(name: str) -> bool:
    from keizoku.registry.models import aliases

    return "champion" in aliases(name) or "archived" in states(name).values()


def _check(name: str, version: int, current: str, to: str, forced: bool, reason: str) -> str:
    """The meaning of the move; ConflictError/UserInputError when it is not allowed."""
    if forced and not reason.strip():
        raise UserInputError(
            f"Forcing {name}:{version} ({current}) to {to} needs a reason: pass "
            "--reason TEXT (it is written to the audit log)."
        )
    meaning = TRANSITIONS.get((current, to))
    if (current, to) == ("registered", "champion") and (forced or _had_champion(name)):
        meaning = None  # only the model's first champion is admitted ungated, never forced
    if meaning is not None:
        return meaning
    if forced and to == "champion":
        return f"forced from {current}"
    allowed = sorted(t for f, t in TRANSITIONS if f == current)
    raise ConflictError(
        f"Version {name}:{version} is {current}; it cannot become {to} "
        f"(from {current} it may become: {', '.join(allowed) or 'nothing'}). "
        "See `keizoku models " + name + "` and docs/lifecycle.md."
    )


def transition(
    name: str,
    version: int,
    to: State,
    *,
    action: str,
    actor: str | None = None,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    forced: bool = False,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move ``name:version`` to state ``to``; returns the audit entry, or changes nothing.

    ``gate`` (``{"passed": bool, "reasons": [...]}``) records a gate verdict with the move
    to ``gated-pass``/``gated-fail``. Moving a version to ``champion`` archives the previous
    champion; moving one to ``challenger`` returns the previous challenger to ``gated-pass``.
    """
    from keizoku.registry.models import aliases, delete_alias, set_alias

    with model_lock(name):
        current = state_of(name, version)
        meaning = _check(name, version, current, to, forced, reason)
        before = aliases(name)
        changes = _Changes(name, before)
        try:
            if gate is not None:
                changes.tag(version, GATE_TAG, "passed" if gate["passed"] else "failed")
                reasons = " | ".join(gate.get("reasons") or [])[:4900]
                changes.tag(version, REASONS_TAG, reasons or None)
            # a version's state is written before an alias points at it, and after the
            # aliases leave it: a server polling in between never finds an alias on a
            # version whose recorded state may not answer (it would refuse the swap)
            if to == "champion":
                old = before.get("champion")
                changes.tag(version, STATE_TAG, to)
                if old is not None and old != version:
                    changes.tag(old, STATE_TAG, "archived")
                set_alias(name, "champion", version)
                if before.get("challenger") == version:
                    delete_alias(name, "challenger")
            elif to == "challenger":
                old = before.get("challenger")
                changes.tag(version, STATE_TAG, to)
                set_alias(name, "challenger", version)
                if old is not None and old != version:
                    changes.tag(old, STATE_TAG, "gated-pass")
            else:
                for alias, v in before.items():
                    if v == version:
                        delete_alias(name, alias)
                changes.tag(version, STATE_TAG, to)
            previous = before.get("champion") if to == "champion" else before.get(to)
            return audit.record(
                name,
                action,
                actor=actor,
                reason=reason,
                version=version,
                previous=previous,
                forced=forced,
                evidence={
                    **(evidence or {}),
                    "transition": {"from": current, "to": to, "meaning": meaning},
                },
            )
        except BaseException:
            changes.undo()
            raise
