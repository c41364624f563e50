"""Deployments and experiments: the one place that changes who answers a model's traffic.

``deploy`` is the only function that writes a deployment (``keizoku.lifecycle.deployment``
stores it). It resolves every alias the deployment routes to into a *version* and pins
it, refuses a version that did not pass its gates (MLflow tag ``keizoku.gate=passed``)
unless it is the champion, starts an **experiment** when a second version gets traffic,
and writes the audit entry, all under the model's deployment lock.

An experiment is an object, one store document ``experiments/<model>/<id>`` (in the
embedded store the file ``home()/experiments/<model>/<id>.json``)::

    {"id": "split-20261129T101500-1a2b", "model": "churn", "kind": "split",
     "control": {"alias": "champion", "version": 3},
     "treatment": {"alias": "challenger", "version": 4},
     "split": {"champion": 90, "challenger": 10}, "started": 1796000100.0,
     "ended": null, "status": "active", "steps": [], "step": 0, "stepped_at": null}

``kind`` is ``split`` (A/B), ``shadow`` (the treatment scores in the background) or
``canary`` (a split that steps up, see ``keizoku.lifecycle.canary``). ``keizoku
abtest`` analyses only the traffic of the two versions since ``started``.

``promote`` and ``rollback`` here wrap ``keizoku.lifecycle.rollout``'s so that an active
deployment is migrated consistently: promoting the experiment's treatment ends the
experiment (status ``promoted``), records the experiment and its last A/B result as the
promotion's evidence, and routes all traffic to the new champion; promoting any other
version while an experiment runs is refused (ConflictError) with the commands that fix
it; ``rollback`` ends an active experiment and then restores the previous champion.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keizoku import audit
from keizoku.errors import ConflictError, UserInputError
from keizoku.home import home
from keizoku.names import check_name, safe_child
from keizoku.store import store_from_env

__all__ = [
    "Arm",
    "Experiment",
    "active_experiment",
    "deploy",
    "end_experiment",
    "list_experiments",
    "load_experiment",
    "promote",
    "rollback",
    "save_experiment",
]

GATE_TAG = "keizoku.gate"  # the state machine's tag: passed | failed (absent: never gated)
Kind = Literal["split", "shadow", "canary"]


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str
    version: int


class Experiment(BaseModel):
    """Two versions compared on live traffic from ``started`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    model: str
    kind: Kind
    control: Arm
    treatment: Arm
    split: dict[str, float]
    started: float
    ended: float | None = None
    status: Literal["active", "promoted", "ended", "rolled_back"] = "active"
    steps: list[float] = Field(default_factory=list)
    step: int = 0
    stepped_at: float | None = None
    reason: str = ""

    def summary(self) -> dict[str, Any]:
        """What an audit entry keeps of the experiment."""
        return {
            "experiment": self.id,
            "kind": self.kind,
            "control_version": self.control.version,
            "treatment_version": self.treatment.version,
            "split": self.split,
            "started": self.started,
        }


# --- storage ---------------------------------------------------------------------------


KIND = "experiments"


def _folder(name: str) -> Path:
    return safe_child(home() / KIND, name)


def experiment_path(name: str, exp_id: str) -> Path:
    """The embedded store's file of an experiment."""
    return safe_child(_folder(name), exp_id, ".json", what="Experiment id")


def _key(name: str, exp_id: str) -> str:
    return f"{check_name(name)}/{check_name(exp_id, 'Experiment id')}"


def save_experiment(exp: Experiment) -> str:
    """Save ``exp``; returns where (for messages)."""
    store = store_from_env()
    store.put(KIND, _key(exp.model, exp.id), exp.model_dump(mode="json"))
    return f"{store.describe()}, {KIND}/{exp.model}/{exp.id}"


def load_experiment(name: str, exp_id: str) -> Experiment:
    from keizoku.errors import NotFoundError

    store = store_from_env()
    try:
        data = store.get(KIND, _key(name, exp_id))
        if data is not None:
            return Experiment.model_validate(data)
    except ValueError as exc:
        raise UserInputError(
            f"Experiment {KIND}/{name}/{exp_id} in {store.describe()} is not valid: {exc}. "
            "Restore it or remove it."
        ) from exc
    known = [e.id for e in list_experiments(name)][-5:]
    raise NotFoundError(
        f"Model '{name}' has no experiment '{exp_id}' (recent: {known or 'none'}). "
        f"List them with `keizoku status {name}`."
    )


def list_experiments(name: str) -> list[Experiment]:
    out = []
    for _, data in store_from_env().documents(KIND, prefix=f"{check_name(name)}/"):
        try:
            out.append(Experiment.model_validate(data))
        except ValueError:
            continue
    return sorted(out, key=lambda e: e.started)


def active_experiment(name: str) -> Experiment | None:
    """The experiment the model's deployment runs now, if any."""
    from keizoku.lifecycle.deployment import load_deployment

    dep = load_deployment(name)
    if not dep.experiment:
        return None
    exp = load_experiment(name, dep.experiment)
    return exp if exp.status == "active" else None


def end_experiment(exp: Experiment, status: str, reason: str = "") -> Experiment:
    ended = exp.model_copy(update={"status": status, "ended": time.time(), "reason": reason})
    save_experiment(ended)
    return ended


@contextmanager
def deployment_lock(name: str) -> Iterator[None]:
    """One writer of a model's deployment at a time (deploy, promote, rollback, canary)."""
    with store_from_env().lock(f"deployments/{check_name(name)}.lock"):
        yield


# --- deploy ----------------------------------------------------------------------------


def _check_gated(name: str, alias: str, version: int, champion: int) -> None:
    from keizoku.registry.models import get_version

    if version == champion:
        return
    verdict = get_version(f"{name}:{version}").tags.get(GATE_TAG)
    if verdict != "passed":
        state = {None: "was never gated", "failed": "failed its gates"}.get(verdict, verdict)
        raise ConflictError(
            f"Alias '{alias}' of '{name}' points at version {version}, which {state} "
            f"(tag {GATE_TAG}={verdict or 'absent'}); only a version that passed its gates, "
            f"or the champion, may receive live traffic. Gate it with `keizoku retrain {name}` "
            f"or deploy another alias."
        )


def _new_id(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def deploy(
    name: str,
    *,
    split: dict[str, float] | None = None,
    shadow: str | None = None,
    sticky_key: str | None = None,
    entity_key: str | None = None,
    reset: bool = False,
    canary_steps: list[float] | None = None,
    actor: str | None = None,
    reason: str = "",
) -> tuple[Any, Experiment | None]:
    """Set how ``name``'s traffic is routed; returns (deployment, active experiment).

    ``shadow=""`` / ``sticky_key=""`` clear those fields; ``None`` keeps the current value.
    ``canary_steps`` makes the experiment a canary (``split`` is its first step).
    """
    from keizoku.registry.models import list_versions

    check_name(name)
    list_versions(name)  # NotFoundError, with a "did you mean", before anything is written
    with deployment_lock(name):
        return _deploy_locked(
            name, split, shadow, sticky_key, entity_key, reset, canary_steps, actor, reason
        )


def _deploy_locked(
    name: str,
    split: dict[str, float] | None,
    shadow: str | None,
    sticky_key: str | None,
    entity_key: str | None,
    reset: bool,
    canary_steps: list[float] | None,
    actor: str | None,
    reason: str,
) -> tuple[Any, Experiment | None]:
    from keizoku.lifecycle.deployment import Deployment, load_deployment, save_deployment
    from keizoku.registry.models import resolve

    current = load_deployment(name)
    previous = active_experiment(name)
    champion = resolve(f"{name}@champion")[1]
    if reset:
        if previous is not None:
            end_experiment(previous, "ended", reason or "deployment reset")
        save_deployment(name, Deployment())
        audit.record(
            name, "deploy", actor=actor, reason=reason or "reset: champion answers everything",
            version=champion, evidence={"reset": True, "deployment": Deployment().model_dump(),
                                        "ended": previous.id if previous else None},
        )  # fmt: skip
        return Deployment(), None
    data = current.model_dump()
    if split is not None:
        data["split"] = split
    if shadow is not None:
        data["shadow"] = shadow or None
    if sticky_key is not None:
        data["sticky_key"] = sticky_key or None
    if entity_key is not None:
        data["entity_key"] = entity_key or None
    data["versions"], data["experiment"] = {}, None
    dep = _validated(data)
    pins = {"champion": champion}
    for alias in dep.aliases:
        version = pins.get(alias) or resolve(f"{name}@{alias}")[1]
        _check_gated(name, alias, version, champion)
        pins[alias] = version
    exp = _experiment_for(name, dep, pins, previous, canary_steps)
    dep = dep.model_copy(
        update={"versions": pins, "experiment": exp.id if exp else None,
                "deployed_at": time.time()}
    )  # fmt: skip
    if previous is not None and (exp is None or exp.id != previous.id):
        end_experiment(previous, "ended", f"superseded by {exp.id if exp else 'a deployment'}")
    if exp is not None:
        save_experiment(exp)
    save_deployment(name, dep)
    audit.record(
        name, "deploy", actor=actor, reason=reason,
        version=exp.treatment.version if exp else champion, previous=champion,
        evidence={"deployment": dep.model_dump(), **(exp.summary() if exp else {})},
    )  # fmt: skip
    return dep, exp


def _experiment_for(
    name: str,
    dep: Any,
    pins: dict[str, int],
    previous: Experiment | None,
    canary_steps: list[float] | None,
) -> Experiment | None:
    """The experiment this deployment runs: the previous one when the same versions go on."""
    champion = pins["champion"]
    split_arms = [a for a, w in dep.split.items() if w > 0 and pins[a] != champion]
    if len(split_arms) > 1:
        raise UserInputError(
            f"The split {dep.split} sends traffic to {len(split_arms)} versions besides the "
            "champion; an experiment compares two. Split between champion and one alias."
        )
    if split_arms:
        kind: Kind = "canary" if canary_steps else "split"
        alias = split_arms[0]
    elif dep.shadow and pins[dep.shadow] != champion:
        kind, alias = "shadow", dep.shadow
    else:
        return None
    treatment = Arm(alias=alias, version=pins[alias])
    same = (
        previous is not None
        and previous.treatment == treatment
        and previous.control.version == champion
        and (previous.kind == kind or {previous.kind, kind} == {"split", "canary"})
        and not canary_steps
    )
    if same and previous is not None:
        return previous.model_copy(update={"split": dict(dep.split)})
    return Experiment(
        id=_new_id(kind), model=name, kind=kind,
        control=Arm(alias="champion", version=champion), treatment=treatment,
        split=dict(dep.split), started=time.time(), steps=list(canary_steps or []),
        step=0, stepped_at=time.time() if canary_steps else None,
    )  # fmt: skip


def _validated(data: dict[str, Any]) -> Any:
    from pydantic import ValidationError as PydanticError

    from keizoku.lifecycle.deployment import Deployment

    try:
        return Deployment.model_validate(data)
    except PydanticError as exc:
        msgs = "; ".join(e["msg"] for e in exc.errors())
        raise UserInputError(f"Deployment is not valid: {msgs}.") from exc


# --- promote / rollback that keep the deployment consistent ------------------------------


def _last_abtest(name: str, exp_id: str) -> dict[str, Any] | None:
    for entry in reversed(audit.read(name, actions=("abtest",))):
        if (entry.get("evidence") or {}).get("experiment") == exp_id:
            return dict(entry["evidence"])
    return None


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
    """``rollout.promote`` that migrates or refuses an active deployment (module docstring)."""
    from keizoku.lifecycle import rollout
    from keizoku.lifecycle.deployment import Deployment, load_deployment, save_deployment

    check_name(name)
    with deployment_lock(name):
        dep = load_deployment(name)
        exp = active_experiment(name)
        if exp is not None and version != exp.treatment.version:
            raise ConflictError(
                f"Model '{name}' runs {exp.kind} experiment {exp.id} (champion v"
                f"{exp.control.version} vs {exp.treatment.alias} v{exp.treatment.version}); "
                f"promoting v{version} would leave it routing to versions that are no longer "
                f"what it tests. Promote v{exp.treatment.version}, or end the experiment "
                f"first with `keizoku deploy {name} --reset`."
            )
        if exp is not None:
            result = _last_abtest(name, exp.id)
            evidence = {**(evidence or {}), **exp.summary(), "abtest": result}
        entry = rollout.promote(
            name, version, actor=actor, reason=reason, evidence=evidence, force=force, spec=spec,
            data=data,
        )  # fmt: skip
        if exp is not None:
            end_experiment(exp, "promoted", f"v{version} promoted")
            save_deployment(name, Deployment())
            audit.record(
                name, "deploy", actor=actor, version=version, previous=exp.control.version,
                reason=f"experiment {exp.id} ended by the promotion of v{version}",
                evidence={"reset": True, "ended": exp.id},
            )  # fmt: skip
        elif not dep.is_default:
            pins = {**dep.versions, "champion": version}
            save_deployment(name, dep.model_copy(update={"versions": pins}))
        return entry


def rollback(name: str, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
    """``rollout.rollback`` that first ends an active experiment (all traffic to champion)."""
    from keizoku.lifecycle import rollout
    from keizoku.lifecycle.deployment import Deployment, load_deployment, save_deployment

    check_name(name)
    with deployment_lock(name):
        dep = load_deployment(name)
        exp = active_experiment(name)
        entry = rollout.rollback(name, actor=actor, reason=reason)
        if exp is not None:
            end_experiment(exp, "rolled_back", reason or "rollback")
        if not dep.is_default:
            save_deployment(name, Deployment())
            audit.record(
                name, "deploy", actor=actor, version=entry.get("version"),
                reason=f"rollback reset the deployment{f' (ended {exp.id})' if exp else ''}",
                evidence={"reset": True, "ended": exp.id if exp else None},
            )  # fmt: skip
        return entry


def experiment_json(exp: Experiment) -> str:
    return json.dumps(exp.model_dump(), default=str)
