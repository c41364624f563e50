"""The project workflow behind the CLI: init, train, predict.

The CLI parses and prints; everything it does is a call into this module, so a
notebook or a script gets exactly the same behaviour.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from keizoku.data.ingest import ReadOptions, fingerprint_frame, read_table
from keizoku.data.schema import Schema, Task, infer_schema
from keizoku.data.validate import validate_frame
from keizoku.errors import DataError, UserInputError
from keizoku.home import atomic_write_bytes
from keizoku.spec import DataSpec, Spec, TrainSpec, load_spec, parse_duration
from keizoku.training.automl import AutoMLConfig, AutoMLResult, fit_automl
from keizoku.training.cv import TrialResult

# Builders of extra artifacts saved with every trained version, as "module:function".
# Each is called as fn(result: AutoMLResult, frame: DataFrame, schema: Schema, folder: Path)
# and returns {name: path} of files it wrote into ``folder``.
ARTIFACT_HOOKS: tuple[str, ...] = (
    "keizoku.monitoring.reference:reference_artifact",
    "keizoku.evaluation.evidence:build_evidence",
)

REGISTER_RESERVE_S = 2.5  # logging + registering the model, measured ~1-2 s on 2 cores
EVIDENCE_SHARE = 0.08  # of the budget, for the artifact hooks (evidence steps are time-capped)

__all__ = ["init_project", "train_project", "predict_file", "TrainOutcome", "load_training_data"]


def _project_name(source: str | None, sql: str | None) -> str:
    if source:
        stem = Path(source).name.split(".")[0]
    else:
        match = re.search(r"from\s+([A-Za-z0-9_]+)", sql or "", re.I)
        stem = match.group(1) if match else "project"
    name = re.sub(r"[^A-Za-z0-9_\-]+", "-", stem).strip("-")
    return name or "project"


def init_project(
    data: str | None,
    target: str,
    *,
    read: DataSpec,
    task: Task | None = None,
    name: str | None = None,
    sensitive: list[str] | None = None,
    spec_path: str | Path = "keizoku.yaml",
    force: bool = False,
) -> tuple[Spec, Schema]:
    """Read ``data``, infer its schema, write ``keizoku.yaml`` and ``schema.yaml``."""
    spec_file = Path(spec_path)
    if spec_file.exists() and not force:
        raise UserInputError(f"'{spec_file}' already exists. Pass --force to overwrite it.")
    read.path = data
    frame = read_table(data, read.read_options())
    schema = infer_schema(frame, target, task=task, id_columns=read.id_columns, sensitive=sensitive)
    spec = Spec(
        project=name or _project_name(data, read.sql),
        target=target,
        task=schema.task,
        data=read,
        sensitive=list(sensitive or []),
    )
    if data and not Path(data).is_absolute():
        spec.data.path = os.path.relpath(Path(data).resolve(), spec_file.resolve().parent)
    schema_path = spec_file.resolve().parent / spec.schema_file
    schema.save(schema_path)
    spec.save(spec_file)
    return spec, schema


def load_training_data(spec: Spec, base: Path) -> tuple[pd.DataFrame, Schema]:
    """The spec's data and schema (the saved, possibly edited, schema file wins)."""
    source = spec.data.path
    if source and not Path(source).is_absolute():
        source = str(base / source)
    frame = read_table(source, spec.data.read_options())
    schema_path = base / spec.schema_file
    with warnings.catch_warnings(record=True):
        inferred = infer_schema(
            frame,
            spec.target,
            task=spec.task,
            id_columns=spec.data.id_columns,
            sensitive=spec.sensitive,
        )
    if not schema_path.exists():
        return frame, inferred
    schema = Schema.load(schema_path)
    schema.target, schema.task, schema.classes = spec.target, inferred.task, inferred.classes
    schema.check_frame(frame, need_target=True)
    return frame, schema


@dataclass
class TrainOutcome:
    name: str
    version: int
    alias: str
    result: AutoMLResult
    data_sha256: str
    schema_sha256: str


def _config(train: TrainSpec, overrides: dict[str, Any]) -> AutoMLConfig:
    merged = {**train.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    return AutoMLConfig(
        budget_s=parse_duration(merged["budget"]),
        search=merged["search"],
        preset=merged["preset"],
        metric=merged["metric"],
        folds=merged["folds"],
        models=merged["models"],
        max_latency_ms=merged["max_latency_ms"],
        max_size_mb=merged["max_size_mb"],
        ensemble=merged["ensemble"],
        seed=merged["seed"],
        warm_start=overrides.get("warm_start") or [],
    )


def train_project(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: dict[str, Any] | None = None,
    on_trial: Callable[[TrialResult, float], None] | None = None,
    frame: pd.DataFrame | None = None,
    extra_artifacts: Callable[[Any, pd.DataFrame, Path], dict[str, Path]] | None = None,
    started: float | None = None,
) -> TrainOutcome:
    """Train per the spec and register the result as a candidate (no alias, no traffic);
    nothing is registered on failure. ``keizoku.lifecycle.retrain.train_gated`` gates it.

    ``started`` (a ``time.monotonic()`` reading) is when the user's clock started; the
    budget then covers reading the data and registering the model, not only the search.
    """
    from keizoku.registry.store import TrainingRun

    spec, base = load_spec(spec_path)
    overrides = dict(overrides or {})
    cfg = _config(spec.train, overrides)
    clock = started if started is not None else time.monotonic()
    if frame is None:
        frame, schema = load_training_data(spec, base)
    else:
        with warnings.catch_warnings(record=True):
            schema = infer_schema(frame, spec.target, task=spec.task, sensitive=spec.sensitive)
    data_sha, schema_sha = fingerprint_frame(frame), schema.fingerprint()
    params = {
        "budget_s": cfg.budget_s,
        "search": cfg.search,
        "preset": cfg.preset,
        "metric": cfg.metric or "default",
        "rows": len(frame),
        "columns": frame.shape[1],
        "task": schema.task,
        "target": schema.target,
        "data_sha256": data_sha,
        "schema_sha256": schema_sha,
    }
    with TrainingRun(spec.project, params=params) as run:

        def trial_done(t: TrialResult, elapsed: float) -> None:
            metrics = {
                "cv_score": t.mean,
                "cv_std": t.std,
                "fit_time_s": t.fit_time_s,
                "latency_ms": t.latency_ms,
                "size_mb": t.size_mb,
            }
            run.log_trial(t.number, t.family, t.params, metrics if t.fold_scores else {}, t.status)
            if on_trial is not None:
                on_trial(t, elapsed)

        spent = time.monotonic() - clock
        reserve = REGISTER_RESERVE_S + EVIDENCE_SHARE * cfg.budget_s
        search_budget = max(cfg.budget_s - spent - reserve, min(5.0, cfg.budget_s))
        result = fit_automl(
            frame, schema, dataclasses.replace(cfg, budget_s=search_budget), on_trial=trial_done
        )
        metric = result.metric.name
        run.log_metrics(
            {
                f"cv_{metric}": result.cv_score,
                "cv_std": result.cv_std,
                "elapsed_s": result.elapsed_s,
                "n_trials": len(result.trials),
            }
        )
        with tempfile.TemporaryDirectory(prefix="keizoku-art-") as tmp:
            files = _artifacts(Path(tmp), result, schema, data_sha, schema_sha, spec)
            for hook in ARTIFACT_HOOKS:
                module, func = hook.split(":")
                builder = getattr(importlib.import_module(module), func)
                files.update(builder(result, frame, schema, Path(tmp)))
            if extra_artifacts is not None:
                files.update(extra_artifacts(result, frame, Path(tmp)))
            tags = {
                "keizoku.data_sha256": data_sha,
                "keizoku.schema_sha256": schema_sha,
                "keizoku.metric": metric,
                "keizoku.cv_score": f"{result.cv_score:.6g}",
                "keizoku.task": str(schema.task),
                "keizoku.members": ",".join(m.family for m in result.model.members),
            }
            version = run.register(result.model, files, tags, _signature(frame, schema, result))
    # A candidate: no alias until keizoku.lifecycle gates and admits it (alias set then).
    return TrainOutcome(spec.project, version, "", result, data_sha, schema_sha)


def _artifacts(
    tmp: Path, result: AutoMLResult, schema: Schema, data_sha: str, schema_sha: str, spec: Spec
) -> dict[str, Path]:
    schema.save(tmp / "schema.yaml")
    result.leaderboard.to_csv(tmp / "leaderboard.csv", index=False)
    info = {
        "project": spec.project,
        "task": schema.task,
        "target": schema.target,
        "metric": result.metric.name,
        "cv_score": result.cv_score,
        "cv_std": result.cv_std,
        "data_sha256": data_sha,
        "schema_sha256": schema_sha,
        "elapsed_s": result.elapsed_s,
        "members": [
            {"family": m.family, "weight": m.weight, "params": m.params}
            for m in result.model.members
        ],
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "refit_on_all_rows": result.model.info.get("refit_on_all_rows", True),
        "partial_cv": result.model.info.get("partial_cv", False),
    }
    (tmp / "training.json").write_text(json.dumps(info, indent=2, default=str))
    return {
        "schema": tmp / "schema.yaml",
        "leaderboard": tmp / "leaderboard.csv",
        "training": tmp / "training.json",
    }


def _signature(frame: pd.DataFrame, schema: Schema, result: AutoMLResult) -> Any:
    from mlflow.models import infer_signature

    cols = [c.name for c in schema.features + schema.sensitive]
    # Column types as in the training data: MLflow refuses to cast int64 input to a double
    # column ("Can not safely convert"), which breaks `pyfunc.predict` on a plain CSV frame.
    sample = frame[cols].head(50)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return infer_signature(sample, result.model.score_frame(sample).drop(columns=cols))
    except Exception:  # noqa: BLE001 - a signature is documentation; never fail training on it
        return None


def predict_file(
    ref: str,
    data: str,
    out: str,
    *,
    read: ReadOptions | None = None,
    batch_size: int = 10_000,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Score ``data`` with model ``ref`` in batches; write ``out`` (.csv or .parquet) atomically."""
    from keizoku.registry.store import load_model

    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserInputError(f"Output '{out}' must end in .csv or .parquet.")
    model = load_model(ref)
    frame = read_table(data, read)
    validate_frame(model.schema, frame)
    parts = []
    for start in range(0, len(frame), batch_size):
        parts.append(model.score_frame(frame.iloc[start : start + batch_size]))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(frame)), len(frame))
    scored = pd.concat(parts) if parts else frame
    if len(scored) != len(frame):
        raise DataError(f"Scored {len(scored)} rows of {len(frame)}: nothing was written.")
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        if suffix == ".csv":
            scored.to_csv(tmp.name, index=False)
        else:
            scored.to_parquet(tmp.name, index=False)
        atomic_write_bytes(out, Path(tmp.name).read_bytes())
    return len(scored)
