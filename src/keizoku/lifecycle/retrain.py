"""``retrain``: run the retraining policy once.

1. check the triggers (drift, live metric drop, new labels, schedule), unless forced;
2. build the training frame: the spec's original data plus labelled traffic (prediction
   log joined with feedback) in the policy's window, minus the most recent share of it,
   which is held out;
3. train with a warm start from the champion's configurations (``training.json``);
   ``train_project`` registers the new version with alias ``challenger``;
4. score champion and challenger on the same hold-out, run the gates;
5. passing: the version keeps ``challenger`` (tag ``keizoku.gate=passed``); failing:
   the alias is removed, the version stays for inspection (``keizoku.gate=failed``);
   either way the audit log says why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.errors import NotFoundError
from keizoku.lifecycle import audit
from keizoku.lifecycle.gates import (
    GateReport,
    evidence_gate,
    latency_gate,
    latency_ms,
    metric_gate,
    paired_bootstrap,
)
from keizoku.lifecycle.policy import RetrainingPolicy, parse_policy, seconds
from keizoku.lifecycle.rollout import GATE_TAG

__all__ = ["RetrainOutcome", "retrain", "check_triggers", "labelled_traffic", "warm_start"]


@dataclass
class RetrainOutcome:
    model: str
    status: str  # "skipped" | "passed" | "failed"
    champion: int | None
    version: int | None = None
    triggers: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    gates: GateReport | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["gates"] = self.gates.to_dict() if self.gates else None
        return out


def _last_retrain(name: str, champion_created: float) -> float:
    done = [e for e in audit.read(name, actions=("retrain",)) if e["evidence"].get("status")]
    return max([e["ts"] for e in done], default=champion_created)


def _new_labels(name: str, after: float) -> int:
    import duckdb

    from keizoku.monitoring.feedback import feedback_glob
    from keizoku.monitoring.performance import has_files

    pattern = feedback_glob(name)
    if not has_files(pattern):
        return 0
    sql = (
        f"SELECT count(*) FROM read_parquet('{pattern}', union_by_name=true) WHERE received_ts > ?"
    )
    return int(duckdb.connect().execute(sql, [after]).fetchone()[0])  # type: ignore[index]


def check_triggers(name: str, policy: RetrainingPolicy, champion: int) -> list[str]:
    """The triggers that fire now, each as a sentence."""
    from keizoku.monitoring.monitor import monitor
    from keizoku.registry.store import get_version

    t = policy.triggers
    fired: list[str] = []
    created = get_version(f"{name}:{champion}").created
    last = _last_retrain(name, created)
    try:
        report = monitor(name, version=champion, since_s=seconds(policy.monitor_window))
    except NotFoundError:
        report = None
    if report is not None and t.drift_features is not None:
        if len(report.drifted) >= t.drift_features:
            fired.append(f"drift in {len(report.drifted)} feature(s): {', '.join(report.drifted)}")
    perf = report.performance if report is not None else None
    if perf is not None and t.metric_drop is not None and perf.drop == perf.drop:
        if perf.drop >= t.metric_drop:
            fired.append(
                f"live {perf.metric} {perf.live:.4f} is {perf.drop:.4f} below training "
                f"{perf.training:.4f} (limit {t.metric_drop:g})"
            )
    if t.new_labels is not None:
        n = _new_labels(name, last)
        if n >= t.new_labels:
            fired.append(f"{n} new labels since the last retrain (limit {t.new_labels})")
    if t.every is not None and time.time() - last >= seconds(t.every):
        fired.append(f"schedule: last retrain {(time.time() - last) / 3600:.1f} h ago")
    return fired


def labelled_traffic(name: str, since: float | None, schema: Any) -> pd.DataFrame:
    """Logged inputs with their labels as a frame of features + target, oldest first."""
    from keizoku.monitoring.performance import labelled_rows
    from keizoku.monitoring.reference import label_text

    rows = labelled_rows(name, since=since, columns="p.request_id, p.ts, p.shadow, p.inputs")
    if rows.empty:
        return pd.DataFrame()
    rows = rows[~rows["shadow"].astype(bool)].drop_duplicates("request_id").sort_values("ts")
    frame = pd.DataFrame.from_records([json.loads(s) for s in rows["inputs"]])
    if schema.task == "regression":
        frame[schema.target] = rows["label_num"].to_numpy(dtype=float)
    else:
        lookup = {label_text(c): c for c in (schema.classes or [])}
        frame[schema.target] = [lookup.get(v, v) for v in rows["label"]]
    frame["__ts__"] = rows["ts"].to_numpy()
    return frame.reset_index(drop=True)


def warm_start(name: str, version: int) -> list[dict[str, Any]]:
    """The champion's member configurations, for ``train_project(overrides={"warm_start"})``."""
    from keizoku.registry.store import load_model, version_artifact

    try:
        info = json.loads(version_artifact(f"{name}:{version}", "training.json").read_text())
        members = info.get("members") or []
        return [{"family": m["family"], "params": m["params"]} for m in members]
    except NotFoundError:
        model = load_model(f"{name}:{version}")
        return [{"family": m.family, "params": m.params} for m in model.members]


def _align(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
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


def _encode(y: pd.Series, model: Any) -> np.ndarray:
    if model.task == "regression":
        return y.to_numpy(dtype=float)
    from keizoku.monitoring.reference import label_text

    index = {label_text(c): i for i, c in enumerate(model.classes or [])}
    return np.array([index[label_text(v)] for v in y], dtype=int)


def retrain(
    name: str,
    spec_path: str | Path = "keizoku.yaml",
    *,
    force: bool = False,
    actor: str | None = None,
    on_trial: Any = None,
) -> RetrainOutcome:
    """Run the retraining policy of ``spec_path`` once for model ``name``."""
    from keizoku.project import load_training_data, train_project
    from keizoku.registry.store import load_model, resolve
    from keizoku.spec import load_spec
    from keizoku.training.metrics import get_metric

    spec, base = load_spec(spec_path)
    policy = parse_policy(spec.retraining)
    champion = resolve(f"{name}@champion")[1]
    champ_model = load_model(f"{name}:{champion}")
    schema = champ_model.schema
    outcome = RetrainOutcome(name, "skipped", champion)
    outcome.triggers = ["forced (--force)"] if force else check_triggers(name, policy, champion)
    if not outcome.triggers:
        outcome.reasons = ["no trigger fired"]
        return outcome
    since = time.time() - seconds(policy.window.since)
    traffic = labelled_traffic(name, since, schema)
    if len(traffic) < policy.window.min_labels:
        outcome.reasons = [
            f"only {len(traffic)} labelled predictions in the last {policy.window.since}; the "
            f"policy needs {policy.window.min_labels} (retraining.window.min_labels) to train "
            "and hold out. Send more labels with `keizoku feedback`."
        ]
        audit.record(
            name, "retrain", actor=actor, reason="not enough labels", previous=champion,
            evidence={"status": "skipped", "triggers": outcome.triggers,
                      "reasons": outcome.reasons},
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
    }
    overrides = {**policy.train, "warm_start": warm_start(name, champion)}
    trained = train_project(spec_path, overrides=overrides, frame=frame, on_trial=on_trial)
    version = outcome.version = trained.version
    chall_model = load_model(f"{name}:{version}")
    features = [c.name for c in schema.features + schema.sensitive]
    hx = holdout[[c for c in features if c in holdout.columns]]
    y = _encode(holdout[spec.target], champ_model)
    metric = get_metric(champ_model.metric or None, schema.task)  # type: ignore[arg-type]
    stats = paired_bootstrap(
        metric, y, champ_model.predict_raw(hx), chall_model.predict_raw(hx),
        n_boot=policy.gates.bootstrap, confidence=policy.gates.confidence,
    )  # fmt: skip
    records = hx.head(50).to_dict(orient="records")
    lat = (latency_ms(champ_model, records), latency_ms(chall_model, records))
    report = GateReport(
        [metric_gate(stats, metric.name, policy.gates), latency_gate(*lat, policy.gates)]
    )
    if policy.gates.evidence:
        check = evidence_gate(name, version, spec)
        if check is not None:
            report.checks.append(check)
    outcome.gates, outcome.stats = report, {**stats, "metric": metric.name, "latency_ms": lat}
    _settle(name, version, report)
    outcome.status = "passed" if report.passed else "failed"
    outcome.reasons = report.reasons
    audit.record(
        name, "retrain", actor=actor, version=version, previous=champion,
        reason="; ".join(outcome.triggers),
        evidence={"status": outcome.status, "triggers": outcome.triggers, "rows": outcome.rows,
                  "gates": report.to_dict(), "bootstrap": outcome.stats},
    )  # fmt: skip
    return outcome


def _settle(name: str, version: int, report: GateReport) -> None:
    from keizoku.registry.store import client, delete_alias, get_version

    c = client()
    c.set_model_version_tag(name, str(version), GATE_TAG, "passed" if report.passed else "failed")
    if report.passed:
        return
    c.set_model_version_tag(
        name, str(version), "keizoku.gate_reasons", " | ".join(report.reasons)[:4900]
    )
    if "challenger" in get_version(f"{name}:{version}").aliases:
        delete_alias(name, "challenger")
