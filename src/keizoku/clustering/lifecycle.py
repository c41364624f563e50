"""``keizoku train`` for ``task: clustering``: search, register, gate, admit, all audited.

The same loop as a supervised model (``keizoku.lifecycle.retrain.train_gated``): the first
version becomes champion; later ones are fitted without a seeded hold-out share of the
rows, registered as candidates, gated against the champion on that hold-out
(:mod:`keizoku.clustering.gates`) and become challenger or ``gated-fail``; a failure after
registration leaves nothing registered.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku import audit
from keizoku.clustering.model import ClusterModel
from keizoku.clustering.train import ClusterResult, ClusterTrial, fit_clustering
from keizoku.data.ingest import fingerprint_frame, read_table
from keizoku.data.schema import Schema, infer_schema
from keizoku.evaluation.evidence import BACKGROUND_ROWS, EVIDENCE_FILES, write_json
from keizoku.lifecycle.gates import HOLDOUT_SHARE
from keizoku.lifecycle.policy import parse_policy
from keizoku.lifecycle.retrain import (
    Admission,
    RetrainOutcome,
    _align,
    _champion,
    _undo_candidate,
    fired_triggers,
    gate_and_admit,
)
from keizoku.monitoring.reference import (
    REFERENCE_FILE,
    SAMPLE_FILE,
    build_reference,
    categorical_ref,
    numeric_ref,
    reference_sample,
)
from keizoku.spec import Spec, load_spec

__all__ = [
    "CLUSTERS_FILE",
    "ClusterOutcome",
    "clustering_data",
    "logged_inputs",
    "retrain_clustering",
    "train_clustering",
]

CLUSTERS_FILE = "clusters.json"  # the profile of each cluster and the distance sketch
BACKGROUND = EVIDENCE_FILES["background"]  # rows that explanations compare a record with


@dataclass
class ClusterOutcome:
    """What ``train_clustering`` did: the version, the search, the time per phase."""

    name: str
    version: int
    result: ClusterResult
    data_sha256: str
    schema_sha256: str
    holdout_rows: int = 0
    phases: dict[str, float] = field(default_factory=dict)


def clustering_data(spec: Spec, base: Path) -> tuple[pd.DataFrame, Schema]:
    """The spec's data and its schema (the saved ``schema.yaml`` wins), without a target."""
    source = spec.data.path
    if source and not Path(source).is_absolute():
        source = str(base / source)
    frame = read_table(source, spec.data.read_options())
    path = base / spec.schema_file
    if path.exists():
        schema = Schema.load(path)
    else:
        schema = infer_schema(
            frame, None, task="clustering", id_columns=spec.data.id_columns,
            sensitive=spec.sensitive,
        )  # fmt: skip
    schema.target, schema.task, schema.classes = None, "clustering", None
    return frame, schema


def _split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, hold-out rows): a seeded ``HOLDOUT_SHARE`` of the rows held out."""
    rng = np.random.default_rng(seed)
    hold = np.zeros(len(frame), dtype=bool)
    hold[rng.choice(len(frame), int(round(len(frame) * HOLDOUT_SHARE)), replace=False)] = True
    return frame[~hold].reset_index(drop=True), frame[hold].reset_index(drop=True)


def _artifacts(
    folder: Path, frame: pd.DataFrame, schema: Schema, result: ClusterResult
) -> dict[str, Path]:
    """schema, leaderboard, training info, cluster profile and the monitoring reference."""
    model = result.model
    schema.save(folder / "schema.yaml")
    result.leaderboard.to_csv(folder / "leaderboard.csv", index=False)
    info = {
        **model.info,
        "task": "clustering",
        "metric": "silhouette",
        "cv_score": result.silhouette,
        "elapsed_s": result.elapsed_s,
        "members": [{"family": result.chosen.family, "params": result.chosen.params}],
    }
    (folder / "training.json").write_text(json.dumps(info, indent=2, default=str))
    clusters = {
        "k": model.k,
        "family": result.chosen.family,
        "reason": result.reason,
        "profile": result.profile,
        "distance": numeric_ref(result.distance).model_dump(),
    }
    (folder / CLUSTERS_FILE).write_text(json.dumps(clusters, indent=1, default=str))
    ref = build_reference(
        frame, schema, oof=None, metric="silhouette", greater_is_better=True,
        cv_score=result.silhouette,
    )  # fmt: skip
    ref.target = ""
    ref.classes = [str(c) for c in model.classes]
    ref.prediction = categorical_ref(np.asarray([str(c) for c in result.clusters], dtype=object))
    ref.distance = numeric_ref(result.distance)
    (folder / REFERENCE_FILE).write_text(ref.model_dump_json(indent=1))
    reference_sample(frame, list(ref.features)).to_parquet(folder / SAMPLE_FILE, index=False)
    # explanations (sampling Shapley of the membership of the assigned cluster) need rows
    columns = [c.name for c in schema.features + schema.sensitive]
    sample = frame[columns].sample(min(len(frame), BACKGROUND_ROWS), random_state=0)
    write_json(folder / BACKGROUND, json.loads(sample.to_json(orient="records", date_format="iso")))
    names = ("schema.yaml", "leaderboard.csv", "training.json", CLUSTERS_FILE, REFERENCE_FILE,
             SAMPLE_FILE, BACKGROUND)  # fmt: skip
    return {n.split(".")[0]: folder / n for n in names}


def _register(
    spec: Spec,
    frame: pd.DataFrame,
    schema: Schema,
    result: ClusterResult,
    params: dict[str, Any],
) -> int:
    """Log the search as an MLflow run (a child run per trial) and register a candidate."""
    from keizoku.registry.models import signature_of
    from keizoku.registry.tracking import TrainingRun

    with TrainingRun(spec.project, params=params) as run:
        for t in result.trials:
            metrics = {"silhouette": t.silhouette, "davies_bouldin": t.davies_bouldin,
                       "fit_time_s": t.fit_time_s, **({"bic": t.bic} if t.bic else {})}  # fmt: skip
            run.log_trial(t.number, t.family, t.params, metrics, t.status)
        run.log_metrics({"silhouette": result.silhouette, "elapsed_s": result.elapsed_s,
                         "n_trials": len(result.trials), "k": result.model.k})  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="keizoku-art-") as tmp:
            files = _artifacts(Path(tmp), frame, schema, result)
            tags = {
                "keizoku.data_sha256": str(params["data_sha256"]),
                "keizoku.schema_sha256": str(params["schema_sha256"]),
                "keizoku.metric": "silhouette",
                "keizoku.cv_score": f"{result.silhouette:.6g}",
                "keizoku.task": "clustering",
                "keizoku.members": result.chosen.family,
            }
            sample = frame[[c.name for c in schema.features]].head(50)
            model: ClusterModel = result.model
            signature = signature_of(sample, lambda: model.score_frame(sample).drop(
                columns=list(sample.columns)))  # fmt: skip
            return run.register(model, files, tags, signature)


def train_clustering(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: dict[str, Any] | None = None,
    on_trial: Callable[[ClusterTrial, float], None] | None = None,
    started: float | None = None,
    actor: str | None = None,
    frame: pd.DataFrame | None = None,
    holdout: pd.DataFrame | None = None,
    reason: str = "",
) -> tuple[ClusterOutcome, Admission]:
    """``keizoku train`` for a clustering project: (what was trained, where it went).

    ``overrides``: ``budget`` (seconds), ``max_trials``, ``seed`` (None values ignored).
    ``frame``: fit on these rows instead of the spec's data (retraining); ``holdout``: gate
    on these rows (default: a seeded share of the rows, once there is a champion).
    """
    from keizoku.duration import parse_duration
    from keizoku.names import check_name
    from keizoku.registry.models import delete_version

    clock = started if started is not None else time.monotonic()
    phases: dict[str, float] = {}
    spec, base = load_spec(spec_path)
    check_name(spec.project, "Project name")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    section = spec.clustering.model_copy(
        update={k: given[k] for k in ("max_trials", "seed") if k in given}
    )
    budget = parse_duration(given["budget"], what="--budget") if "budget" in given else None
    budget = budget or spec.train.budget
    data, schema = clustering_data(spec, base)
    frame = data if frame is None else frame
    champion = _champion(spec.project)
    if holdout is not None or champion is None:
        fit = frame
    else:
        fit, holdout = _split(frame, section.seed)
    phases["read"] = time.monotonic() - clock
    spent = time.monotonic() - clock
    result = fit_clustering(
        fit, schema, section, budget_s=max(budget * 0.6 - spent, 1.0), on_trial=on_trial
    )
    phases["search"] = time.monotonic() - clock - sum(phases.values())
    params = {
        "budget_s": budget, "max_trials": section.max_trials or "none", "task": "clustering",
        "rows": len(fit), "columns": fit.shape[1], "algorithms": ",".join(section.algorithms),
        "k_range": f"{section.k_min}-{section.k_max}", "scaling": section.scaling,
        "data_sha256": fingerprint_frame(fit), "schema_sha256": schema.fingerprint(),
    }  # fmt: skip
    version = _register(spec, fit, schema, result, params)
    phases["registration"] = time.monotonic() - clock - sum(phases.values())
    name = spec.project
    try:
        audit.record(
            name, "register", actor=actor, reason=reason, version=version,
            evidence={"data_sha256": params["data_sha256"], "task": "clustering",
                      "schema_sha256": params["schema_sha256"], "k": result.model.k,
                      "cv_score": result.silhouette, "metric": "silhouette"},
        )  # fmt: skip
        gates = parse_policy(spec.retraining).gates
        admission = gate_and_admit(
            name, version, holdout, "", gates, spec=spec, actor=actor, reason=reason
        )
    except BaseException as exc:
        _undo_candidate(name, version, actor, exc, delete_version)
        raise
    phases["gates"] = time.monotonic() - clock - sum(phases.values())
    outcome = ClusterOutcome(
        name, version, result, str(params["data_sha256"]), str(params["schema_sha256"]),
        0 if holdout is None else len(holdout), phases,
    )  # fmt: skip
    return outcome, admission


def logged_inputs(name: str, since: float | None) -> pd.DataFrame:
    """The inputs the server logged for ``name`` since ``since`` (not shadow), oldest first."""
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.log import log_scan, segment_glob
    from keizoku.monitoring.performance import has_files

    pattern = segment_glob(name)
    if not has_files(pattern):
        return pd.DataFrame()
    sql = (
        f"SELECT request_id, ts, inputs FROM {log_scan(pattern)} "
        "WHERE NOT shadow AND ts >= ? ORDER BY ts"
    )
    with duckdb_cursor() as con:
        rows = con.execute(sql, [since or 0.0]).df().drop_duplicates("request_id")
    return pd.DataFrame.from_records([json.loads(s) for s in rows["inputs"]])


def retrain_clustering(
    name: str, spec_path: str | Path, champion: int, *, force: bool, actor: str | None
) -> RetrainOutcome:
    """``keizoku retrain`` for a clustering: no labels, so the rows are the logged inputs.

    The triggers are the supervised ones (drift of a feature, of the cluster shares or of
    the distances to the centres; the schedule). The inputs logged in ``retraining.window.
    since`` (at least ``window.min_labels`` of them) join the original data unless
    ``window.include_original`` is false; their most recent ``window.holdout`` share is
    the gates' hold-out.
    """
    from keizoku.duration import parse_duration
    from keizoku.lifecycle.policy import parse_policy

    spec, base = load_spec(spec_path)
    policy = parse_policy(spec.retraining)
    outcome = RetrainOutcome(name, "skipped", champion)
    outcome.triggers = fired_triggers(name, policy, champion, spec, force=force)
    triggers = [t.to_dict() for t in outcome.triggers]
    because = "; ".join(map(str, outcome.triggers))
    if not outcome.triggers:
        outcome.reasons = ["no trigger fired"]
        return outcome
    traffic = logged_inputs(name, time.time() - parse_duration(policy.window.since))
    if len(traffic) < policy.window.min_labels:
        outcome.reasons.append(
            f"only {len(traffic)} logged predictions in the last {policy.window.since}; a "
            f"clustering retrain needs {policy.window.min_labels} (retraining.window.min_labels)."
        )
        audit.record(
            name, "retrain", actor=actor, reason="not enough logged rows", previous=champion,
            evidence={"status": "skipped", "triggers": triggers, "reasons": outcome.reasons},
        )  # fmt: skip
        return outcome
    original, _ = clustering_data(spec, base)
    traffic = _align(traffic, original)
    cut = int(round(len(traffic) * (1 - policy.window.holdout)))
    fresh, holdout = traffic.iloc[:cut], traffic.iloc[cut:].reset_index(drop=True)
    parts = [original, fresh] if policy.window.include_original else [fresh]
    frame = pd.concat(parts, ignore_index=True)
    outcome.rows = {"original": len(frame) - len(fresh), "traffic": len(fresh),
                    "holdout": len(holdout)}  # fmt: skip
    trained, admission = train_clustering(
        spec_path, overrides=policy.train, frame=frame, holdout=holdout, actor=actor,
        reason=because,
    )  # fmt: skip
    outcome.admitted(trained.version, admission)
    audit.record(
        name, "retrain", actor=actor, version=outcome.version, previous=champion,
        reason=because,
        evidence={"status": outcome.status, "triggers": triggers, "rows": outcome.rows,
                  "gates": admission.gates.to_dict() if admission.gates else None},
    )  # fmt: skip
    return outcome
