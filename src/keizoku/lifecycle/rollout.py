"""Promote and roll back: move the ``champion`` alias, audited.

``promote`` points ``champion`` at a version (MLflow moves an alias in one
update, so a serving process polling the alias sees the old or the new version,
never neither) and drops that version's ``challenger`` alias. The previous
champion is remembered in the audit log; ``rollback`` restores it, and
successive rollbacks walk further back. Both write who, when, why and the
evidence to the audit log; a refused promotion is audited too.

The promotion gate refuses a version whose retraining gates failed (tag
``keizoku.gate=failed``) and, through ``keizoku.evaluation.gate.check_evidence``,
one without a model card or whose fairness gap exceeds the spec's limit.
``force=True`` overrides the gate; the override and the refusals are audited.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keizoku.errors import GateError, NotFoundError, UserInputError
from keizoku.lifecycle import audit

__all__ = ["promote", "rollback", "promotion_refusals", "champion_stack", "GATE_TAG"]

GATE_TAG = "keizoku.gate"


@contextmanager
def _model_lock(name: str) -> Iterator[None]:
    path = audit.audit_path(name).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _champion(name: str) -> int | None:
    from keizoku.registry.store import resolve

    try:
        return resolve(f"{name}@champion")[1]
    except NotFoundError:
        return None


def _load_spec(spec: Any) -> Any:
    if spec is not None and not isinstance(spec, str | Path):
        return spec
    from keizoku.spec import load_spec

    path = Path(spec) if spec is not None else Path("keizoku.yaml")
    if not path.exists():
        return None
    return load_spec(path)[0]


def promotion_refusals(name: str, version: int, spec: Any = None) -> list[str]:
    """Reasons to refuse promoting ``name:version`` (empty: it may be promoted)."""
    from keizoku.registry.store import get_version

    info = get_version(f"{name}:{version}")
    reasons = []
    if info.tags.get(GATE_TAG) == "failed":
        why = info.tags.get("keizoku.gate_reasons", "see `keizoku history`")
        reasons.append(f"Version {name}:{version} failed its retraining gates: {why}")
    try:
        from keizoku.evaluation.gate import check_evidence
    except ImportError:
        return reasons
    reasons += check_evidence(name, version, _load_spec(spec))
    return reasons


def promote(
    name: str,
    version: int,
    *,
    actor: str | None = None,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    force: bool = False,
    spec: Any = None,
) -> dict[str, Any]:
    """Make ``name:version`` the champion; returns the audit entry. GateError when refused."""
    from keizoku.registry.store import delete_alias, get_version, set_alias

    info = get_version(f"{name}:{version}")
    with _model_lock(name):
        previous = _champion(name)
        if previous == version:
            raise UserInputError(
                f"Version {name}:{version} is already the champion. Nothing to promote."
            )
        refusals = promotion_refusals(name, version, spec)
        evidence = {**(evidence or {}), "refusals": refusals}
        if refusals and not force:
            audit.record(
                name, "promote_refused", actor=actor, reason=reason, version=version,
                previous=previous, evidence=evidence,
            )  # fmt: skip
            raise GateError(
                f"Promotion of {name}:{version} refused: " + " ".join(refusals)
                + " Pass --force (audited) to promote anyway.",
                details={"refusals": refusals},
            )  # fmt: skip
        set_alias(name, "champion", version)
        if "challenger" in info.aliases:
            delete_alias(name, "challenger")
        return audit.record(
            name, "promote", actor=actor, reason=reason, version=version, previous=previous,
            forced=bool(force and refusals), evidence=evidence,
        )  # fmt: skip


def champion_stack(name: str) -> list[int]:
    """Champions that ``rollback`` can restore, most recent last (from the audit log)."""
    stack: list[int] = []
    for entry in audit.read(name, actions=("promote", "rollback")):
        if entry["action"] == "promote" and entry.get("previous") is not None:
            stack.append(int(entry["previous"]))
        elif entry["action"] == "rollback" and stack:
            stack.pop()
    return stack


def rollback(name: str, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
    """Restore the champion before the last promotion; returns the audit entry."""
    from keizoku.registry.store import get_version, set_alias

    with _model_lock(name):
        stack = champion_stack(name)
        if not stack:
            raise NotFoundError(
                f"Model '{name}' has no earlier champion to roll back to: no promotion is "
                "recorded in its audit log. See `keizoku history NAME`."
            )
        target = stack[-1]
        get_version(f"{name}:{target}")  # still registered?
        current = _champion(name)
        set_alias(name, "champion", target)
        return audit.record(
            name, "rollback", actor=actor, reason=reason, version=target, previous=current,
            evidence={"restored": target, "replaced": current},
        )  # fmt: skip
