"""``retrain``: run the retraining policy once.

1. check the triggers (drift, live metric drop, new labels, schedule), unless forced;
2. build the training frame: the spec's original data plus labelled traffic (prediction
   log joined with feedback) in the policy's window, minus the most recent share of it,
   which is held out;
   Labels outside the champion's classes (or non-numeric ones for regression) are
   dropped and counted, never a crash;
3. train with a warm start from the champion's configurations (``training.json``);
   ``train_project`` registers a *candidate* (state ``registered``, no alias, no traffic);
4. ``gate_and_admit``: score champion and candidate on the same hold-out, run the gates;
5. passing: ``gated-pass`` then ``challenger`` (the previous challenger goes back to
   ``gated-pass``); failing: ``gated-fail``, no alias, nothing else touched. Every step
   goes through ``keizoku.lifecycle.state.transition`` and is audited.

When anything fails after the candidate was registered, the candidate is deleted and the
crash is audited: a failed retrain leaves nothing registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku import audit
from keizoku.duration import parse_duration
from keizoku.errors import ConflictError, ExitCode, NotFoundError
from keizoku.lifecycle import state
from keizoku.lifecycle.gates import GateConfig, GateReport, run_gates, split_holdout
from keizoku.lifecycle.policy import RetrainingPolicy, parse_policy
from keizoku.monitoring.drift import DriftConfig
from keizoku.training.context import TrainingContext

__all__ = [
    "Admission",
    "RetrainOutcome",
    "Trigger",
    "TriggerKind",
    "admit_candidate",
    "check_triggers",
    "exit_code",
    "fired_triggers",
    "gate_and_admit",
    "labelled_traffic",
    "record_retrain",
    "retrain",
    "train_candidate",
    "train_gated",
    "warm_start",
]


class TriggerKind(StrEnum):
    """Why a retrain was attempted (``retraining.triggers``, or ``--force``)."""

    DRIFT = "drift"
    METRIC_DROP = "metric_drop"
    NEW_LABELS = "new_labels"
    SCHEDULE = "schedule"
    FORCED = "forced"


@dataclass(frozen=True)
class Trigger:
    """A trigger that fired: its kind (what cron acts on) and a sentence (what a person reads)."""

    kind: TriggerKind
    sentence: str

    def __str__(self) -> str:
        return self.sentence

    def to_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "sentence": self.sentence}


# The one map from a trigger to the exit code of `keizoku loop --once`, in order of
# precedence; kinds not listed do not change the code.
TRIGGER_EXIT_CODES: dict[TriggerKind, ExitCode] = {
    TriggerKind.DRIFT: ExitCode.DRIFT,
    TriggerKind.METRIC_DROP: ExitCode.METRIC_DROP,
}


def exit_code(status: str, triggers: list[Trigger]) -> ExitCode:
    """The exit code of a retrain attempt: 6 when it failed its gates, else the first of
    ``TRIGGER_EXIT_CODES`` among ``triggers`` (10 drift, 11 metric drop), else 0."""
    if status == "failed":
        return ExitCode.GATE
    fired = {t.kind for t in triggers}
    for kind, code in TRIGGER_EXIT_CODES.items():
        if kind in fired:
            return code
    return ExitCode.OK


@dataclass
class RetrainOutcome:
    model: str
    status: str  # "skipped" | "passed" | "failed"
    champion: int | None
    version: int | None = None
    triggers: list[Trigger] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    gates: GateReport | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def admitted(self, version: int, admission: Admission) -> None:
        """Record the trained ``version`` and where its gates sent it."""
        self.version = version
        self.gates, self.stats = admission.gates, admission.stats
        self.status = "passed" if admission.passed else "failed"
        self.reasons += admission.gates.reasons if admission.gates else []

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["gates"] = self.gates.to_dict() if self.gates else None
        out["triggers"] = [t.to_dict() for t in self.triggers]
        return out


def _last_retrain(name: str, champion_created: float) -> float:
    done = [e for e in audit.read(name, actions=("retrain",)) if e["evidence"].get("status")]
    return max([e["ts"] for e in done], default=champion_created)


def _new_labels(name: str, after: float) -> int:
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.feedback import feedback_glob
    from keizoku.monitoring.log import log_scan
    from keizoku.monitoring.performance import has_files

    pattern = feedback_glob(name)
    if not has_files(pattern):
        return 0
    sql = f"SELECT count(*) FROM {log_scan(pattern)} WHERE received_ts > ?"
    with duckdb_cursor() as con:
        return int(con.execute(sql, [after]).fetchone()[0])  # type: ignore[index]


def check_triggers(
    name: str, policy: RetrainingPolicy, champion: int, drift: DriftConfig | None = None
) -> list[Trigger]:
    """The triggers that fire now; drift is judged as ``keizoku monitor`` judges it, with
    the spec's ``monitoring:`` section (``drift``), multivariate verdict included."""
    from keizoku.monitoring.monitor import monitor
    from keizoku.registry.models import get_version

    t = policy.triggers
    fired: list[Trigger] = []
    created = get_version(f"{name}:{champion}").created
    last = _last_retrain(name, created)
    try:
        window = parse_duration(policy.monitor_window)
        report = monitor(name, version=champion, since_s=window, config=drift, estimate=False)
    except NotFoundError:
        report = None
    if report is not None and t.drift_features is not None:
        if len(report.drifted) >= t.drift_features:
            drifted = f"{len(report.drifted)} feature(s): {', '.join(report.drifted)}"
            fired.append(Trigger(TriggerKind.DRIFT, f"drift in {drifted}"))
        elif report.multivariate is not None and report.multivariate.drifted:
            mv = report.multivariate
            fired.append(Trigger(
                TriggerKind.DRIFT,
                f"drift in the joint distribution: a domain classifier tells the window from "
                f"the training rows with AUC {mv.auc:.3f} (threshold {mv.threshold:g})",
            ))  # fmt: skip
    perf = report.performance if report is not None else None
    if perf is not None and t.metric_drop is not None and perf.drop == perf.drop:
        if perf.drop >= t.metric_drop:
            fired.append(Trigger(
                TriggerKind.METRIC_DROP,
                f"live {perf.metric} {perf.live:.4f} is {perf.drop:.4f} below training "
                f"{perf.training:.4f} (limit {t.metric_drop:g})",
            ))  # fmt: skip
    if t.new_labels is not None:
        n = _new_labels(name, last)
        if n >= t.new_labels:
            fired.append(Trigger(
                TriggerKind.NEW_LABELS,
                f"{n} new labels since the last retrain (limit {t.new_labels})",
            ))  # fmt: skip
    if t.every is not None and time.time() - last >= parse_duration(t.every):
        hours = (time.time() - last) / 3600
        fired.append(Trigger(TriggerKind.SCHEDULE, f"schedule: last retrain {hours:.1f} h ago"))
    return fired


def fired_triggers(
    name: str, policy: RetrainingPolicy, champion: int, spec: Any, *, force: bool
) -> list[Trigger]:
    """``--force``, or the triggers that fire now (:func:`check_triggers`)."""
    if force:
        return [Trigger(TriggerKind.FORCED, "forced (--force)")]
    return check_triggers(name, policy, champion, spec.monitoring)


def labelled_traffic(
    name: str, since: float | None, schema: Any, dropped: dict[str, int] | None = None
) -> pd.DataFrame:
    """Logged inputs with their labels as a frame of features + target, oldest first.

    Labels the champion's schema does not know are dropped; ``dropped`` receives
    label text → count.
    """
    from keizoku.data.labels import LabelCodec
    from keizoku.monitoring.performance import labelled_rows

    rows = labelled_rows(name, since=since, columns="p.request_id, p.ts, p.shadow, p.inputs")
    if rows.empty:
        return pd.DataFrame()
    rows = rows[~rows["shadow"].astype(bool)].drop_duplicates("request_id").sort_values("ts")
    codec = LabelCodec.from_schema(schema)
    labels = rows["label_num"] if schema.task == "regression" else rows["label"]
    known = np.array([codec.known(v) for v in labels], dtype=bool)
    if dropped is not None:
        for value in rows.loc[~known, "label"]:
            dropped[str(value)] = dropped.get(str(value), 0) + 1
    rows, labels = rows[known], labels[known]
    if rows.empty:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records([json.loads(s) for s in rows["inputs"]])
    if schema.task == "regression":
        frame[schema.target] = labels.to_numpy(dtype=float)
    else:
        frame[schema.target] = [codec.original(v) for v in labels]
    frame["__ts__"] = rows["ts"].to_numpy()
    return frame.reset_index(drop=True)


def warm_start(name: str, version: int) -> list[dict[str, Any]]:
    """The champion's member configurations, for ``train_project(overrides={"warm_start"})``."""
    from keizoku.registry.models import load_model, version_artifact

    try:
        info = json.loads(version_artifact(f"{name}:{version}", "training.json").read_text())
        members = info.get("members") or []
        return [{"family": m["family"], "params": m["params"]} for m in members]
    except NotFoundError:
        model = load_model(f"{name}:{version}")
        return [{"family": m.family, "params": m.params} for m in model.members]


def _align(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the columns (and dtypes, where they cast) of ``like``."""
    out = frame.copy()
    for col in like.columns:
        if col not in out.columns:
            out[col] = np.nan
        else:
            try:
                out[col] = out[col].astype(like[col].dtype)
            except (TypeError, ValueError):
                pass
    return out[list(like.columns)]


@dataclass
class Admission:
    """What ``gate_and_admit`` decided for a candidate."""

    version: int
    state: str  # "champion" (first version) | "challenger" | "gated-fail"
    gates: GateReport | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    displaced: int | None = None  # the challenger this one replaced (back to gated-pass)

    @property
    def passed(self) -> bool:
        return self.state in ("champion", "challenger", "gated-pass")


def _champion(name: str) -> int | None:
    from keizoku.registry.models import aliases

    try:
        return aliases(name).get("champion")
    except Exception:  # noqa: BLE001 - no registered model yet
        return None


def gate_and_admit(
    name: str,
    version: int,
    holdout: pd.DataFrame | None,
    target: str,
    cfg: GateConfig,
    *,
    spec: Any = None,
    actor: str | None = None,
    reason: str = "",
    admit: bool = True,
) -> Admission:
    """Gate a registered candidate against the champion and move it, audited.

    No champion: the candidate is the first version and becomes champion (audited as
    such). Otherwise the gates run on ``holdout`` (rows neither model was fit on) and the
    candidate becomes ``challenger`` (``gated-pass`` when ``admit`` is false) or
    ``gated-fail``.
    """

    def gate(champion: int) -> tuple[GateReport, dict[str, Any]]:
        if holdout is None:
            raise ConflictError(
                f"{name}:{champion} became champion while {name}:{version} was training; "
                f"there is no hold-out to gate it against. Run `keizoku train` again."
            )
        gates = run_gates
        if getattr(spec, "task", None) == "clustering":  # no labels: the clustering gates
            from keizoku.clustering.gates import cluster_gates as gates
        return gates(name, version, champion, holdout, target, cfg, spec)

    return admit_candidate(name, version, gate, actor=actor, reason=reason, admit=admit)


def admit_candidate(
    name: str,
    version: int,
    gate: Callable[[int], tuple[GateReport, dict[str, Any]]],
    *,
    actor: str | None = None,
    reason: str = "",
    admit: bool = True,
) -> Admission:
    """The first version becomes champion; a later one is gated by ``gate(champion)``
    (its report and stats) and moved to challenger, gated-pass or gated-fail, audited.

    Used by :func:`gate_and_admit` (tables) and by other kinds of model (images) whose
    gates compare candidate and champion their own way.
    """
    with state.model_lock(name):
        champion = _champion(name)
        if champion is None:
            state.transition(
                name, version, "champion", action="admit", actor=actor,
                reason=reason or state.FIRST_VERSION, evidence={"gates": None},
            )  # fmt: skip
            return Admission(version, "champion")
        report, stats = gate(champion)
        verdict = {"passed": report.passed, "reasons": report.reasons}
        evidence = {"champion": champion, "gates": report.to_dict(), "stats": stats}
        to: state.State = "gated-pass" if report.passed else "gated-fail"
        state.transition(
            name, version, to, action="gate", actor=actor, reason=reason, evidence=evidence,
            gate=verdict,
        )  # fmt: skip
        displaced = None
        if report.passed and admit:
            entry = state.transition(
                name, version, "challenger", action="admit", actor=actor, reason=reason,
                evidence={"gate": "passed", "champion": champion},
            )  # fmt: skip
            displaced = entry["previous"] if entry["previous"] != version else None
        final = ("challenger" if admit else "gated-pass") if report.passed else "gated-fail"
        return Admission(version, final, report, stats, displaced)


def record_retrain(
    outcome: RetrainOutcome,
    version: int,
    admission: Admission,
    rows: dict[str, int],
    because: str,
    actor: str | None,
) -> RetrainOutcome:
    """Fill ``outcome`` with the trained ``version`` and its ``admission``; audit the retrain."""
    outcome.version = version
    outcome.gates, outcome.stats = admission.gates, admission.stats
    outcome.status = "passed" if admission.passed else "failed"
    outcome.reasons += admission.gates.reasons if admission.gates else []
    outcome.rows = {k: int(v) for k, v in rows.items()}
    audit.record(
        outcome.model, "retrain", actor=actor, version=version, previous=outcome.champion,
        reason=because,
        evidence={"status": outcome.status, "triggers": [t.to_dict() for t in outcome.triggers],
                  "rows": outcome.rows, "stats": outcome.stats,
                  "gates": admission.gates.to_dict() if admission.gates else None},
    )  # fmt: skip
    return outcome


def gate_reserve(holdout: pd.DataFrame | None, cfg: GateConfig, metric: str | None) -> float:
    """Seconds gating will take after registration, on an idle core (0 without a hold-out).

    Loading both versions and the latency check, plus two paired bootstraps of ``cfg.
    bootstrap`` resamples each, two metric evaluations per resample: array operations for
    the metrics in ``resample.ARRAY_METRICS`` (ROC AUC, the slowest, 0.55 s for 1,000
    resamples of 2,000 rows), one scikit-learn call each for the others; measured on 2
    shared cores (docs/decisions/0013-whole-command-budget.md).
    """
    from keizoku.lifecycle.resample import ARRAY_METRICS

    if holdout is None:
        return 0.0
    if metric is None or metric in ARRAY_METRICS:  # None: the task's default, all in it
        per_call = GATE_ARRAY_ROW_S * len(holdout)
    else:
        per_call = GATE_CALL_S + GATE_ROW_S * len(holdout)
    return GATE_BASE_S + 2 * cfg.bootstrap * 2 * per_call


GATE_BASE_S = 2.0  # load both versions, score the hold-out, time 50 single-row calls
GATE_CALL_S = 0.006  # one scikit-learn metric call (input checks dominate: 4.7-8.8 ms measured)
GATE_ROW_S = 1e-6  # and per hold-out row
GATE_ARRAY_ROW_S = 2.5e-7  # per hold-out row and resample, in array operations


def _metric_name(spec: Any, overrides: dict[str, Any] | None) -> str | None:
    """The metric the gates will bootstrap (None: a classification default)."""
    given = (overrides or {}).get("metric") or spec.train.metric
    return str(given) if given else ("rmse" if spec.task == "regression" else None)


def train_candidate(
    spec_path: str | Path,
    *,
    frame: pd.DataFrame | None,
    holdout: pd.DataFrame | None,
    overrides: dict[str, Any] | None = None,
    on_trial: Any = None,
    started: float | None = None,
    actor: str | None = None,
    reason: str = "",
    on_phase: Any = None,
    earlier_phases: dict[str, float] | None = None,
) -> tuple[Any, Admission]:
    """Train, register a candidate, gate and admit it; on any failure nothing stays registered.

    Returns (the ``TrainOutcome``, the ``Admission``); the outcome's ``phases`` include
    ``gates``, and the budget (from ``started``) leaves time for them.
    """
    from keizoku.project import train_project
    from keizoku.registry.models import delete_version
    from keizoku.spec import load_spec

    spec, _ = load_spec(spec_path)
    cfg = parse_policy(spec.retraining).gates
    trained = train_project(
        spec_path, overrides=overrides, on_trial=on_trial, frame=frame, started=started,
        extra_artifacts=_row_hashes, on_phase=on_phase,
        keep_after_s=gate_reserve(holdout, cfg, _metric_name(spec, overrides)),
        earlier_phases=earlier_phases,
    )  # fmt: skip
    name, version = trained.name, trained.version
    try:
        audit.record(
            name, "register", actor=actor, reason=reason, version=version,
            evidence={"data_sha256": trained.data_sha256, "schema_sha256": trained.schema_sha256,
                      "cv_score": trained.result.cv_score, "metric": trained.result.metric.name},
        )  # fmt: skip
        gating = time.monotonic()
        admission = gate_and_admit(
            name, version, holdout, spec.target, cfg, spec=spec, actor=actor, reason=reason
        )
        trained.phases["gates"] = time.monotonic() - gating
        if on_phase is not None:
            on_phase("gates", time.monotonic() - trained.started)
    except BaseException as exc:
        _undo_candidate(name, version, actor, exc, delete_version)
        raise
    return trained, admission


def _undo_candidate(
    name: str, version: int, actor: str | None, exc: BaseException, delete: Any
) -> None:
    """Delete a candidate whose admission did not finish, and audit it."""
    with state.model_lock(name):
        try:
            if state.state_of(name, version) in state.TRAFFIC_STATES:
                return  # admitted: the failure came after; keep it
            delete(name, version)
        finally:
            audit.record(
                name, "register_undone", actor=actor, version=version,
                reason=f"{type(exc).__name__}: {exc}"[:500],
                evidence={"status": "crashed"},
            )  # fmt: skip


ROWS_FILE = "training_rows.npy"  # uint64 hash of every training row (gating hold-outs)


def _hash_rows(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(pd.util.hash_pandas_object(frame, index=False).to_numpy(), dtype=np.uint64)


def _row_hashes(ctx: TrainingContext, folder: Path) -> dict[str, Path]:
    """Artifact: the hashes of the rows a version was fit on (so a later gate can avoid them)."""
    path = folder / ROWS_FILE
    np.save(path, np.unique(_hash_rows(ctx.data.frame)))
    return {"training_rows": path}


def _unseen(name: str, champion: int, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Rows of ``frame`` the champion was not fit on (None when it did not record its rows)."""
    from keizoku.registry.models import version_artifact

    try:
        seen = np.load(version_artifact(f"{name}:{champion}", ROWS_FILE))
    except NotFoundError:
        return None
    return frame[~np.isin(_hash_rows(frame), seen)]


MIN_UNSEEN = 30  # fewest rows the champion never saw that make a hold-out of their own


def _holdout(
    name: str, champion: int, frame: pd.DataFrame, target: str, task: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, hold-out rows) for gating a new version against ``champion``.

    Rows the champion was never fit on make the hold-out when there are at least
    ``MIN_UNSEEN`` (a fair comparison: neither model saw them); otherwise a seeded
    stratified share of all rows, on which the champion may have been fit (the gate then
    favours the champion).
    """
    unseen = _unseen(name, champion, frame)
    if unseen is not None and len(unseen) >= MIN_UNSEEN:
        fit, hold = split_holdout(unseen, target, task, share=0.5, seed=seed)
        return pd.concat([frame.drop(index=unseen.index), fit], ignore_index=True), hold
    return split_holdout(frame, target, task, seed=seed)


def train_gated(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: dict[str, Any] | None = None,
    on_trial: Any = None,
    started: float | None = None,
    actor: str | None = None,
    on_phase: Any = None,
) -> tuple[Any, Admission]:
    """``keizoku train``: the first version becomes champion; later ones are gated.

    With a champion, a seeded stratified share of the data (``HOLDOUT_SHARE``) is kept
    out of the search and both models are scored on it. The budget, counted from
    ``started``, covers the gates too; ``on_phase(name, elapsed)`` reports each phase.
    """
    from keizoku.names import check_name
    from keizoku.project import load_training_data
    from keizoku.spec import load_spec

    clock = started if started is not None else time.monotonic()
    spec, base = load_spec(spec_path)
    check_name(spec.project, "Project name")
    if _champion(spec.project) is None:
        return train_candidate(
            spec_path, frame=None, holdout=None, overrides=overrides, on_trial=on_trial,
            started=clock, actor=actor, on_phase=on_phase,
        )  # fmt: skip
    reading = time.monotonic()
    earlier = {"startup": reading - clock}
    if on_phase is not None:
        on_phase("startup", reading - clock)
    frame, schema = load_training_data(spec, base)
    seed = (overrides or {}).get("seed") or spec.train.seed
    champion = _champion(spec.project)
    fit, holdout = _holdout(
        spec.project, int(champion or 0), frame, spec.target, str(schema.task), int(seed or 0)
    )
    earlier["read"] = time.monotonic() - reading  # train_project adds encoding to it
    return train_candidate(
        spec_path, frame=fit, holdout=holdout, overrides=overrides, on_trial=on_trial,
        started=clock, actor=actor, on_phase=on_phase, earlier_phases=earlier,
    )  # fmt: skip


def retrain(
    name: str,
    spec_path: str | Path = "keizoku.yaml",
    *,
    force: bool = False,
    actor: str | None = None,
    on_trial: Any = None,
) -> RetrainOutcome:
    """Run the retraining policy of ``spec_path`` once for model ``name``.

    A crash is audited (``retrain`` with status ``crashed``) and leaves nothing registered.
    """
    from keizoku.registry.models import require_model, resolve

    require_model(name)
    champion = resolve(f"{name}@champion")[1]
    try:
        return _retrain(name, spec_path, champion, force=force, actor=actor, on_trial=on_trial)
    except BaseException as exc:
        audit.record(
            name, "retrain", actor=actor, previous=champion,
            reason=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:500],
            evidence={"status": "crashed"},
        )  # fmt: skip
        raise


def _retrain(
    name: str,
    spec_path: str | Path,
    champion: int,
    *,
    force: bool,
    actor: str | None,
    on_trial: Any,
) -> RetrainOutcome:
    from keizoku.project import load_training_data
    from keizoku.registry.models import load_model
    from keizoku.spec import load_spec

    spec, base = load_spec(spec_path)
    if spec.task == "forecast":  # keizoku.forecast: its own trigger, rolling window and gates
        from keizoku.forecast.loop import retrain_forecast

        return retrain_forecast(name, spec_path, champion, force=force, actor=actor)
    if spec.task == "clustering":  # no labels: the logged inputs (keizoku.clustering)
        from keizoku.clustering.lifecycle import retrain_clustering

        return retrain_clustering(name, spec_path, champion, force=force, actor=actor)
    if spec.images is not None:  # keizoku.deep.loop: image statistics drift, hold-out gate
        from keizoku.deep.loop import retrain_images

        return retrain_images(name, spec_path, champion, force=force, actor=actor)
    policy = parse_policy(spec.retraining)
    schema = load_model(f"{name}:{champion}").schema
    outcome = RetrainOutcome(name, "skipped", champion)
    outcome.triggers = fired_triggers(name, policy, champion, spec, force=force)
    triggers = [t.to_dict() for t in outcome.triggers]  # as the audit entries record them
    because = "; ".join(map(str, outcome.triggers))
    if not outcome.triggers:
        outcome.reasons = ["no trigger fired"]
        return outcome
    since = time.time() - parse_duration(policy.window.since)
    dropped: dict[str, int] = {}
    traffic = labelled_traffic(name, since, schema, dropped)
    if dropped:
        outcome.reasons.append(
            f"dropped {sum(dropped.values())} labelled row(s) whose label is not one of the "
            f"champion's classes: {dict(sorted(dropped.items()))}"
        )
    if len(traffic) < policy.window.min_labels:
        outcome.reasons.append(
            f"only {len(traffic)} labelled predictions in the last {policy.window.since}; the "
            f"policy needs {policy.window.min_labels} (retraining.window.min_labels) to train "
            "and hold out. Send more labels with `keizoku feedback`."
        )
        audit.record(
            name, "retrain", actor=actor, reason="not enough labels", previous=champion,
            evidence={"status": "skipped", "triggers": triggers,
                      "reasons": outcome.reasons, "dropped_labels": dropped},
        )  # fmt: skip
        return outcome
    cut = int(round(len(traffic) * (1 - policy.window.holdout)))
    fresh, holdout = traffic.iloc[:cut], traffic.iloc[cut:]
    parts = []
    if policy.window.include_original:
        original, _ = load_training_data(spec, base)
        parts.append(original)
        fresh = _align(fresh.drop(columns="__ts__"), original)
    else:
        fresh = fresh.drop(columns="__ts__")
    parts.append(fresh)
    frame = pd.concat(parts, ignore_index=True)
    outcome.rows = {
        "original": len(frame) - len(fresh),
        "traffic": len(fresh),
        "holdout": len(holdout),
        "dropped_labels": sum(dropped.values()),
    }
    overrides = {**policy.train, "warm_start": warm_start(name, champion)}
    trained, admission = train_candidate(
        spec_path, frame=frame, holdout=holdout.drop(columns="__ts__"), overrides=overrides,
        on_trial=on_trial, actor=actor, reason=because,
    )  # fmt: skip
    outcome.admitted(trained.version, admission)
    audit.record(
        name, "retrain", actor=actor, version=outcome.version, previous=champion,
        reason=because,
        evidence={"status": outcome.status, "triggers": triggers, "rows": outcome.rows,
                  "gates": admission.gates.to_dict() if admission.gates else None,
                  "bootstrap": outcome.stats, "dropped_labels": dropped},
    )  # fmt: skip
    return outcome
