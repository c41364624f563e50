"""Canary rollout: a gated challenger gets a small share of traffic that steps up on a schedule.

``start`` deploys ``champion=100-p, challenger=p`` as a ``canary`` experiment whose steps
come from the policy (``retraining.rollout.canary_steps``, e.g. 10 → 25 → 50 → 100).
``step`` is called by ``keizoku loop`` on every tick (or by ``keizoku deploy NAME
--canary-step`` from cron) — never by a background thread that would die with the CLI:

1. health: the canary version's 5xx share from the live servers' heartbeats, and — once
   ``min_labels`` of its predictions are labelled — its live metric against the
   champion's on the traffic since the canary started;
2. a breach (error rate above ``max_error_rate`` or a metric drop of ``max_metric_drop``
   or more) rolls back at once: the experiment ends ``rolled_back``, all traffic returns to
   the champion, and the audit log gets a ``canary_rollback`` entry with the numbers;
3. otherwise, when ``step_every`` has passed since the last step, the next step's share
   is deployed (audited as a ``deploy``); the step to 100 % promotes the canary (with the
   experiment and health as evidence).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from keizoku import audit
from keizoku.errors import UserInputError
from keizoku.lifecycle.experiments import (
    Experiment,
    active_experiment,
    deploy,
    end_experiment,
    load_experiment,
    promote,
    save_experiment,
)
from keizoku.lifecycle.policy import Rollout

__all__ = ["CanaryHealth", "CanaryStep", "health", "start", "step"]


@dataclass
class CanaryHealth:
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    labels: int = 0
    metric: str | None = None
    canary_metric: float | None = None
    champion_metric: float | None = None
    metric_drop: float | None = None
    breaches: list[str] = field(default_factory=list)


@dataclass
class CanaryStep:
    """What one ``step`` did: none | waiting | stepped | promoted | rolled_back."""

    model: str
    action: str
    percent: float | None = None
    experiment: str | None = None
    reason: str = ""
    health: CanaryHealth | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def start(
    name: str,
    percent: float,
    rollout: Rollout,
    *,
    alias: str = "challenger",
    actor: str | None = None,
) -> Experiment:
    """Send ``percent`` % of ``name``'s traffic to ``alias`` as a canary that steps up."""
    if not 0 < percent < 100:
        raise UserInputError(
            f"--canary {percent:g} is not a share of traffic between 0 and 100 (exclusive); "
            "write e.g. --canary 10."
        )
    steps = [percent, *[s for s in rollout.canary_steps if s > percent]]
    if steps[-1] < 100:
        steps.append(100.0)
    _, exp = deploy(
        name, split={"champion": 100 - percent, alias: percent}, canary_steps=steps,
        actor=actor, reason=f"canary: {alias} gets {percent:g}% (steps {steps})",
    )  # fmt: skip
    if exp is None:
        raise UserInputError(
            f"Alias '{alias}' of '{name}' is the champion's version: a canary needs another "
            "version. Train or retrain a challenger first."
        )
    return exp


def health(name: str, exp: Experiment, rollout: Rollout) -> CanaryHealth:
    """The canary's error rate (heartbeats) and live metric vs the champion (labels)."""
    from keizoku.lifecycle.servers import live_beats

    h = CanaryHealth()
    for beat in live_beats():
        counts = (beat.models.get(name) or {}).get("requests", {}).get(str(exp.treatment.version))
        if counts and beat.started <= time.time():
            h.requests += int(counts.get("total", 0))
            h.errors += int(counts.get("errors", 0))
    h.error_rate = h.errors / h.requests if h.requests else 0.0
    if h.requests and h.error_rate > rollout.max_error_rate:
        h.breaches.append(
            f"error rate {h.error_rate:.1%} of v{exp.treatment.version} ({h.errors}/"
            f"{h.requests} requests) is above retraining.rollout.max_error_rate "
            f"{rollout.max_error_rate:.1%}"
        )
    _metric(name, exp, rollout, h)
    return h


def _metric(name: str, exp: Experiment, rollout: Rollout, h: CanaryHealth) -> None:
    from keizoku.monitoring.performance import labelled_rows, metric_on_rows
    from keizoku.monitoring.reference import load_reference

    rows = labelled_rows(name, since=exp.started)
    if rows.empty:
        return
    rows = rows[~rows["shadow"].astype(bool)]
    version = rows["version"].astype(int)
    canary, champ = rows[version == exp.treatment.version], rows[version == exp.control.version]
    h.labels = len(canary)
    if len(canary) < rollout.min_labels or len(champ) < rollout.min_labels:
        return
    ref = load_reference(f"{name}:{exp.control.version}")
    h.metric = ref.metric
    h.canary_metric = metric_on_rows(canary, ref.metric, ref.task, ref.classes)
    h.champion_metric = metric_on_rows(champ, ref.metric, ref.task, ref.classes)
    diff = h.champion_metric - h.canary_metric
    h.metric_drop = diff if ref.greater_is_better else -diff
    if h.metric_drop == h.metric_drop and h.metric_drop >= rollout.max_metric_drop:
        h.breaches.append(
            f"live {ref.metric} of v{exp.treatment.version} is {h.canary_metric:.4f}, "
            f"{h.metric_drop:.4f} worse than the champion's {h.champion_metric:.4f} on "
            f"{h.labels} labels (retraining.rollout.max_metric_drop {rollout.max_metric_drop:g})"
        )


def step(
    name: str, rollout: Rollout, *, actor: str | None = None, now: float | None = None
) -> CanaryStep:
    """Judge the active canary of ``name`` once: roll back, step up, promote, or wait."""
    from keizoku.duration import parse_duration

    exp = active_experiment(name)
    if exp is None or exp.kind != "canary":
        return CanaryStep(name, "none", reason="no canary is running")
    now = now or time.time()
    h = health(name, exp, rollout)
    current = exp.split.get(exp.treatment.alias, 0.0)
    if h.breaches:
        end_experiment(exp, "rolled_back", "; ".join(h.breaches))
        deploy(name, reset=True, actor=actor, reason=f"canary {exp.id} rolled back")
        audit.record(
            name, "canary_rollback", actor=actor, reason="; ".join(h.breaches),
            version=exp.treatment.version, previous=exp.control.version,
            evidence={**exp.summary(), "health": asdict(h), "percent": current},
        )  # fmt: skip
        return CanaryStep(name, "rolled_back", current, exp.id, "; ".join(h.breaches), h)
    wait = parse_duration(rollout.step_every) - (now - (exp.stepped_at or exp.started))
    if wait > 0:
        reason = f"{current:g}% for another {wait:.0f}s (retraining.rollout.step_every)"
        return CanaryStep(name, "waiting", current, exp.id, reason, h)
    nxt = exp.steps[exp.step + 1] if exp.step + 1 < len(exp.steps) else 100.0
    if nxt >= 100:
        promote(
            name, exp.treatment.version, actor=actor, reason=f"canary {exp.id} reached 100%",
            evidence={"canary_health": asdict(h)},
        )  # fmt: skip
        return CanaryStep(name, "promoted", 100.0, exp.id, "every step passed", h)
    deploy(
        name, split={exp.control.alias: 100 - nxt, exp.treatment.alias: nxt}, actor=actor,
        reason=f"canary {exp.id}: {current:g}% → {nxt:g}%",
    )  # fmt: skip
    moved = load_experiment(name, exp.id)
    save_experiment(moved.model_copy(update={"step": exp.step + 1, "stepped_at": now}))
    return CanaryStep(name, "stepped", nxt, exp.id, f"{current:g}% → {nxt:g}%", h)
