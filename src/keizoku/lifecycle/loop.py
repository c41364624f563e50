"""The unattended loop: ``keizoku loop NAME`` (a daemon) and ``keizoku loop NAME --once`` (cron).

One **tick**:

1. rollout: an active canary is judged (``keizoku.lifecycle.canary.step``: roll back,
   step up or promote); an active split/shadow experiment gets an A/B verdict (``promote``
   promotes the treatment with the verdict as evidence, ``keep`` ends the experiment,
   ``continue`` waits); with no experiment and ``retraining.rollout.mode`` set, a
   challenger that passed its gates is deployed as a canary, split or shadow;
2. the log is compacted (``keizoku.monitoring.compact``: small segments merged);
3. retrain, unless nothing is new: the **watermark** (``home()/loop/<name>.json``)
   records the number of labels and of logged predictions at the last retrain attempt;
   a tick that sees the same numbers (and the same champion) does nothing, so a lasting
   population change cannot retrain again and again on identical rows; a **cooldown**
   (``retraining.cooldown``) separates two retrains;
4. the tick's exit code (``keizoku loop --once``): 6 when a retrain failed its gates,
   else 10 when the drift trigger fired, 11 when the metric-drop trigger fired, else 0
   (``keizoku.lifecycle.retrain.exit_code``: the one map from a typed ``Trigger`` to a code).

Each step is audited by the function that does it (``deploy``, ``promote``,
``retrain``, ``abtest``). The daemon logs any error in a tick, waits longer after each
failure in a row (doubling, at most 16 intervals) and keeps running; SIGTERM/SIGINT end
it after the current tick.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keizoku import audit
from keizoku.duration import parse_duration
from keizoku.errors import ExitCode, KeizokuError, NotFoundError
from keizoku.home import atomic_write_text, home
from keizoku.lifecycle.policy import RetrainingPolicy, parse_policy
from keizoku.lifecycle.retrain import Trigger, exit_code
from keizoku.names import check_name, safe_child

__all__ = ["Tick", "Watermark", "activity", "run", "tick"]

_log = logging.getLogger("keizoku.loop")
MAX_BACKOFF = 16  # intervals


@dataclass
class Watermark:
    labels: int
    traffic: int
    champion: int | None
    retrain_ts: float


@dataclass
class Tick:
    """What one tick did."""

    model: str
    code: int = 0
    retrain: str = "skipped"  # skipped | passed | failed | error
    reasons: list[str] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    version: int | None = None
    rollout: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what log compaction did
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _path(name: str) -> Path:
    return safe_child(home() / "loop", name, ".json")


def load_watermark(name: str) -> Watermark | None:
    path = _path(name)
    try:
        return Watermark(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_watermark(name: str, mark: Watermark) -> None:
    atomic_write_text(_path(name), json.dumps(asdict(mark)) + "\n")


def _count(pattern: str, where: str = "") -> int:
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.log import log_scan
    from keizoku.monitoring.performance import has_files

    if not has_files(pattern):
        return 0
    sql = f"SELECT count(*) FROM {log_scan(pattern)} {where}"
    with duckdb_cursor() as con:
        return int(con.execute(sql).fetchone()[0])  # type: ignore[index]


def activity(name: str) -> tuple[int, int]:
    """(labels received, predictions answered) for ``name`` so far."""
    from keizoku.monitoring.feedback import feedback_glob
    from keizoku.monitoring.log import segment_glob

    return _count(feedback_glob(name)), _count(segment_glob(name), "WHERE NOT shadow")


def tick(
    name: str, spec_path: str | Path, *, actor: str | None = None, now: float | None = None
) -> Tick:
    """One pass of the loop for ``name`` (see the module docstring)."""
    from keizoku.lifecycle.retrain import retrain
    from keizoku.registry.models import resolve
    from keizoku.spec import load_spec

    check_name(name)
    now = now or time.time()
    spec, _ = load_spec(spec_path)
    policy = parse_policy(spec.retraining)
    result = Tick(name)
    result.rollout = rollout_step(name, policy, actor=actor)
    result.log = compact_step(name, now=now)
    champion = resolve(f"{name}@champion")[1]
    labels, traffic = activity(name)
    mark = load_watermark(name)
    if mark is not None and (labels, traffic, champion) == (mark.labels, mark.traffic,
                                                            mark.champion):  # fmt: skip
        result.reasons = [
            f"nothing new since the last retrain attempt ({labels} labels, {traffic} "
            "predictions): no retrain"
        ]
        return result
    cooldown = parse_duration(policy.cooldown)
    if mark is not None and now - mark.retrain_ts < cooldown:
        left = cooldown - (now - mark.retrain_ts)
        result.reasons = [f"cooldown: next retrain in {left:.0f}s (retraining.cooldown)"]
        return result
    outcome = retrain(name, spec_path, actor=actor)
    result.retrain, result.triggers = outcome.status, list(outcome.triggers)
    result.reasons, result.version = list(outcome.reasons), outcome.version
    if outcome.triggers:  # an attempt was made: the same rows must not be tried again
        save_watermark(name, Watermark(labels, traffic, champion, now))
    result.code = int(exit_code(outcome.status, outcome.triggers))
    return result


def compact_step(name: str, *, now: float | None = None) -> list[str]:
    """Compact the model's log (``keizoku log compact`` with its defaults); a failure is
    reported, never fatal to the tick (the next tick tries again)."""
    from keizoku.monitoring.compact import compact

    try:
        results = compact(name, now=now)
    except Exception as exc:  # noqa: BLE001 - compaction must not stop the retrain
        _log.error("log compaction of '%s' failed: %s", name, exc)
        return [f"log compaction failed: {exc}"]
    return [f"{r.kind}: {r.replaced} files merged into {len(r.written)}, {r.deleted} deleted"
            for r in results if r.replaced or r.deleted]  # fmt: skip


def rollout_step(name: str, policy: RetrainingPolicy, *, actor: str | None = None) -> list[str]:
    """Move the model's rollout one step; returns what happened, as sentences."""
    from keizoku.lifecycle import canary
    from keizoku.lifecycle.experiments import active_experiment

    exp = active_experiment(name)
    if exp is not None and exp.kind == "canary":
        step = canary.step(name, policy.rollout, actor=actor)
        return [f"canary {step.experiment}: {step.action} ({step.reason})"]
    if exp is not None:
        return [_decide(name, exp, actor)]
    if policy.rollout.mode == "none":
        return []
    return _start(name, policy, actor)


def _decide(name: str, exp: Any, actor: str | None) -> str:
    from keizoku.lifecycle.abtest import abtest
    from keizoku.lifecycle.experiments import deploy, promote

    try:
        r = abtest(name, experiment=exp.id)
    except NotFoundError as exc:
        return f"experiment {exp.id}: waiting for labelled traffic ({exc.message})"
    audit.record(
        name, "abtest", actor=actor, reason=r.why, version=r.treatment_version,
        previous=r.control_version, evidence=r.to_dict(),
    )  # fmt: skip
    if r.decision == "promote":
        promote(name, exp.treatment.version, actor=actor, reason=r.why, evidence=r.to_dict())
        return f"experiment {exp.id}: v{exp.treatment.version} promoted ({r.why})"
    if r.decision == "keep":
        deploy(name, reset=True, actor=actor, reason=f"experiment {exp.id}: keep ({r.why})")
        return f"experiment {exp.id}: champion kept, experiment ended ({r.why})"
    return f"experiment {exp.id}: continue ({r.why})"


def _start(name: str, policy: RetrainingPolicy, actor: str | None) -> list[str]:
    from keizoku.lifecycle import canary
    from keizoku.lifecycle.experiments import deploy
    from keizoku.registry.models import get_version, resolve

    try:
        challenger = get_version(f"{name}@challenger")
    except NotFoundError:
        return []
    if challenger.version == resolve(f"{name}@champion")[1]:
        return []
    if challenger.tags.get("keizoku.gate") != "passed":
        return []
    mode = policy.rollout.mode
    exp: Any
    if mode == "canary":
        exp = canary.start(name, policy.rollout.canary_steps[0], policy.rollout, actor=actor)
    elif mode == "split":
        share = policy.rollout.split
        _, exp = deploy(name, split={"champion": 100 - share, "challenger": share}, actor=actor,
                        reason=f"loop: split rollout of v{challenger.version}")  # fmt: skip
    else:
        _, exp = deploy(name, shadow="challenger", actor=actor,
                        reason=f"loop: shadow rollout of v{challenger.version}")  # fmt: skip
    return [f"started {mode} rollout of v{challenger.version} ({exp.id if exp else '-'})"]


def run(
    name: str,
    spec_path: str | Path,
    *,
    interval_s: float,
    stop: threading.Event,
    actor: str | None = None,
    once: bool = False,
    report: Callable[[Tick], None] | None = None,
) -> Tick:
    """Tick every ``interval_s`` until ``stop`` is set (or once); errors back off, never stop."""
    failures = 0
    last = Tick(name)
    while not stop.is_set():
        try:
            last = tick(name, spec_path, actor=actor)
            failures = 0
        except KeizokuError as exc:
            failures += 1
            last = Tick(name, code=exc.exit_code, retrain="error", error=exc.message)
            _log.error("loop tick of '%s' failed: %s", name, exc.message)
        except Exception as exc:  # noqa: BLE001 - a daemon must survive any tick
            failures += 1
            last = Tick(name, code=int(ExitCode.INTERNAL), retrain="error", error=repr(exc))
            _log.exception("loop tick of '%s' failed", name)
        if report is not None:
            report(last)
        if once:
            break
        stop.wait(interval_s * min(2**failures, MAX_BACKOFF) if failures else interval_s)
    return last
