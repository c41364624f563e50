"""Promote and roll back: move the ``champion`` alias through ``state.transition``.

``promote`` makes a version champion (MLflow moves an alias in one update, so a
serving process polling the alias sees the old or the new version, never neither);
the previous champion becomes ``archived`` and is remembered in the audit log;
``rollback`` restores it, and successive rollbacks walk further back.

Before traffic, the gates: a version may become champion only when

* its files match the sha256 recorded at registration (model file and every artifact;
  IntegrityError, exit 5 — ``--force`` does not override this);
* it passed its gates (tag ``keizoku.gate=passed``). A version that was never gated is
  gated now against the champion, on ``data`` (a labelled file) or on a seeded hold-out
  of the spec's data; without either, GateError names the command to run. A version
  that failed its gates is refused;
* its evidence is sufficient (``keizoku.evaluation.gate.check_evidence``: model card,
  fairness limits).

``force=True`` (with a reason) overrides the gate verdict and the evidence, not the
integrity check; the override is audited as forced. The promote entry's evidence holds
the gate entry and the A/B result it relied on. A refused promotion is audited too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keizoku import audit
from keizoku.errors import GateError, NotFoundError, UserInputError
from keizoku.lifecycle import state
from keizoku.lifecycle.state import GATE_TAG, REASONS_TAG

__all__ = ["promote", "rollback", "promotion_refusals", "champion_stack", "GATE_TAG"]


def _champion(name: str) -> int | None:
    from keizoku.registry.models import aliases

    return aliases(name).get("champion")


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
    from keizoku.registry.models import get_version

    info = get_version(f"{name}:{version}")
    current = state.state_of(name, version)
    reasons = []
    if info.tags.get(GATE_TAG) == "failed":
        why = info.tags.get(REASONS_TAG, "see `keizoku history`")
        reasons.append(f"Version {name}:{version} failed its gates: {why}")
    elif current == "registered":
        reasons.append(
            f"Version {name}:{version} was never gated. Gate it against the champion with "
            f"`keizoku promote {name} {version} --data LABELLED.csv` (or from the folder of "
            "its keizoku.yaml, which gates on a hold-out of the spec's data)."
        )
    try:
        from keizoku.evaluation.gate import check_evidence
    except ImportError:
        return reasons
    reasons += check_evidence(name, version, _load_spec(spec))
    return reasons


def _gate_now(name: str, version: int, spec: Any, data: str | None) -> None:
    """Run the gates of a never-gated version (audited); GateError when there is no data."""
    from keizoku.lifecycle.gates import split_holdout
    from keizoku.lifecycle.policy import parse_policy
    from keizoku.lifecycle.retrain import gate_and_admit

    loaded = _load_spec(spec)
    if data is None and (loaded is None or not (loaded.data.path or loaded.data.sql)):
        raise GateError(
            f"Version {name}:{version} was never gated and there is no data to gate it on. "
            f"Run `keizoku promote {name} {version} --data LABELLED.csv` (a file with the "
            "target column), or run it next to the model's keizoku.yaml."
        )
    if data is not None:
        from keizoku.data.ingest import read_table

        if loaded is None:
            raise GateError(
                f"Gating {name}:{version} needs the spec (target column, gate settings): "
                "pass --config keizoku.yaml."
            )
        holdout = read_table(data, loaded.data.read_options())
    else:
        from keizoku.project import load_training_data

        base = Path(spec).resolve().parent if isinstance(spec, str | Path) else Path.cwd()
        frame, schema = load_training_data(loaded, base)
        _, holdout = split_holdout(frame, loaded.target, str(schema.task))
    cfg = parse_policy(loaded.retraining).gates
    # The verdict lands in the tags (and the audit log); promotion_refusals reads it.
    gate_and_admit(
        name, version, holdout, loaded.target, cfg, spec=loaded, reason="gated at promote",
        admit=False,
    )  # fmt: skip


def _relied_on(name: str, version: int) -> dict[str, Any]:
    """The gate and A/B entries a promotion relies on (for its audit entry)."""
    gate = [e for e in audit.read(name, ("gate",)) if e.get("version") == version]
    ab = [e for e in audit.read(name, ("abtest",)) if e.get("version") in (version, None)]
    out: dict[str, Any] = {}
    if gate:
        g = gate[-1]
        out["gate"] = {"time": g["time"], "evidence": g["evidence"].get("gates")}
    if ab:
        a = ab[-1]
        ev = a.get("evidence") or {}
        out["ab_decision"] = {
            "time": a["time"],
            "decision": ev.get("decision"),
            "p_value": ev.get("p_value"),
            "control": ev.get("control"),
            "treatment": ev.get("treatment"),
        }
    return out


def promote(
    name: str,
    version: int,
    *,
    actor: str | None = None,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    force: bool = False,
    spec: Any = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Make ``name:version`` the champion; returns the audit entry. GateError when refused."""
    from keizoku.registry.models import get_version, require_model, verify_version

    require_model(name)
    if force and not reason.strip():
        raise UserInputError(
            f"--force on {name}:{version} needs --reason TEXT: a forced promotion is audited "
            "with its reason."
        )
    get_version(f"{name}:{version}")
    with state.model_lock(name):
        previous = _champion(name)
        if previous == version:
            raise UserInputError(
                f"Version {name}:{version} is already the champion. Nothing to promote."
            )
        verify_version(name, version)
        if not force and previous is not None and state.state_of(name, version) == "registered":
            _gate_now(name, version, spec, data)
        refusals = promotion_refusals(name, version, spec)
        # what the caller passes (the experiment and its A/B result) wins over what is found
        relied = {**_relied_on(name, version), **(evidence or {}), "refusals": refusals}
        if refusals and not force:
            audit.record(
                name, "promote_refused", actor=actor, reason=reason, version=version,
                previous=previous, evidence=relied,
            )  # fmt: skip
            raise GateError(
                f"Promotion of {name}:{version} refused: " + " ".join(refusals)
                + " Pass --force --reason TEXT (audited) to promote anyway.",
                details={"refusals": refusals},
            )  # fmt: skip
        return state.transition(
            name, version, "champion", action="promote", actor=actor, reason=reason,
            evidence=relied, forced=bool(force and refusals),
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
    """Restore the champion before the last promotion; returns the audit entry.

    IntegrityError (nothing moves) when that version's files fail their hash check.
    """
    from keizoku.registry.models import get_version, require_model, verify_version

    require_model(name)
    with state.model_lock(name):
        stack = champion_stack(name)
        if not stack:
            raise NotFoundError(
                f"Model '{name}' has no earlier champion to roll back to: no promotion is "
                "recorded in its audit log. See `keizoku history NAME`."
            )
        target = stack[-1]
        get_version(f"{name}:{target}")  # still registered?
        verify_version(name, target)
        current = _champion(name)
        return state.transition(
            name, target, "champion", action="rollback", actor=actor, reason=reason,
            evidence={"restored": target, "replaced": current},
        )  # fmt: skip
