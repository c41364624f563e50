"""The project workflow behind the CLI: init, train, predict.

The CLI parses and prints; everything it does is a call into this module, so a
notebook or a script gets exactly the same behaviour.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from keizoku.data.ingest import ReadOptions, read_table
from keizoku.data.schema import Schema, Task, infer_schema, infer_target
from keizoku.data.validate import validate_frame
from keizoku.errors import DataError, UserInputError
from keizoku.evaluation.evidence import STEP_BUDGET_S, build_evidence
from keizoku.home import atomic_path
from keizoku.monitoring.reference import reference_artifact
from keizoku.monitoring.text import text_reference_artifact
from keizoku.spec import DataSpec, Spec, load_spec
from keizoku.training.config import merge_train

# The search and the training context (scikit-learn, the model zoo) load where a version
# is trained, so that init and predict do not pay for them (decision 0008).
if TYPE_CHECKING:
    from keizoku.registry import TrainingRun
    from keizoku.training.context import TrainingContext
    from keizoku.training.cv import TrialResult
    from keizoku.training.search import SearchResult

    ArtifactBuilder = Callable[[TrainingContext, Path], dict[str, Path]]


# Builders of the artifacts saved with every trained version, beside schema.yaml,
# leaderboard.csv and training.json. Each writes files into the folder and returns
# {name: path}; each takes the training context, built once.
ARTIFACT_BUILDERS: tuple[ArtifactBuilder, ...] = (
    reference_artifact,
    text_reference_artifact,  # text columns only (monitoring/text.py)
    build_evidence,
)

# What the command does after the search, in seconds on an idle core (measured on the
# shared 2-core machine, docs/decisions/0013-whole-command-budget.md). The budget keeps
# this much, times the machine's contention (``contention``), for after the search.
REGISTER_RESERVE_S = 1.5  # logging the run, pickling and registering the model
EVIDENCE_FIXED_S = 2.0  # the evidence steps without a time cap (metrics, fairness, card)
EVIDENCE_CAPPED_S = 2 * STEP_BUDGET_S  # learning curve + importance: capped in wall time
EVIDENCE_PER_MCELL_S = 2.0  # more per million cells (rows x columns)
EXIT_RESERVE_S = 1.0  # printing the summary and the interpreter's exit, after our clock
REGISTER_PER_MB_S = 0.03  # pickling, hashing and copying the model into the store, per MB
MAX_CONTENTION = 6.0

PhaseCallback = Callable[[str, float], None]

__all__ = [
    "ARTIFACT_BUILDERS",
    "TrainOutcome",
    "init_project",
    "process_started",
    "load_training_data",
    "predict_file",
    "train_project",
    "training_schema",
]


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
    target: str | None,
    *,
    read: DataSpec,
    task: Task | None = None,
    name: str | None = None,
    sensitive: list[str] | None = None,
    spec_path: str | Path = "keizoku.yaml",
    force: bool = False,
) -> tuple[Spec, Schema]:
    """Read ``data``, infer its schema, write ``keizoku.yaml`` and ``schema.yaml``.

    Without a ``target`` the task is clustering (``task="clustering"`` says so explicitly).
    """
    spec_file = Path(spec_path)
    if spec_file.exists() and not force:
        raise UserInputError(f"'{spec_file}' already exists. Pass --force to overwrite it.")
    read.path = data
    if data and task in (None, "binary", "multiclass") and (target or Path(data).is_dir()):
        from keizoku.deep.images import image_schema, infer_images  # images: keizoku.deep

        if not target:
            raise UserInputError(
                f"'{data}' is a folder: for images in class subfolders, name the label column "
                "with --target (for example --target label)."
            )

        images = infer_images(data, target)
        if images is not None:
            schema = image_schema(images, target)
            spec = Spec(project=name or _project_name(data, None), target=target,
                        task=schema.task, data=read, images=images)  # fmt: skip
            return _write_spec(spec, schema, data, spec_file)
    frame = read_table(data, read.read_options())
    # clustering: no target (inferred when none is given); every other task has one
    if not target and task not in (None, "clustering"):
        raise UserInputError(f"--task {task} needs a target: pass --target COLUMN.")
    if target and task == "clustering":
        raise UserInputError(f"--task clustering takes no target: leave out --target {target}.")
    task = "clustering" if not target else task
    sections: dict[str, Any] = {}
    if target and task in (None, "forecast"):  # forecasting: keizoku.forecast
        from keizoku.forecast.infer import infer_forecast
        from keizoku.forecast.train import forecast_schema

        found = infer_forecast(frame, target, read.id_columns, required=task == "forecast")
        if found is not None:
            sections["forecast"] = found
            schema = forecast_schema(frame, target, found)
    if not sections:
        schema = infer_schema(
            frame, target or None, task=task, id_columns=read.id_columns, sensitive=sensitive
        )
    spec = Spec(
        project=name or _project_name(data, read.sql),
        target=target or "",
        task=schema.task,
        data=read,
        sensitive=list(sensitive or []),
        **sections,
    )
    return _write_spec(spec, schema, data, spec_file)


def _write_spec(
    spec: Spec, schema: Schema, data: str | None, spec_file: Path
) -> tuple[Spec, Schema]:
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
    return frame, training_schema(frame, spec, base)


def training_schema(
    frame: pd.DataFrame, spec: Spec, base: Path, *, keep_classes: bool = False
) -> Schema:
    """The saved ``schema.yaml`` with the spec's target, checked against ``frame``.

    Column roles (id, sensitive, ignored) come from the saved schema; only when there
    is none is the schema inferred, with the spec's id and sensitive columns. The task
    and classes are inferred from ``frame`` unless ``keep_classes`` (retraining: the
    saved classes are the model's, a new label is an error, not a new class).
    """
    schema_path = base / spec.schema_file
    saved = Schema.load(schema_path) if schema_path.exists() else None
    if saved is not None and keep_classes and saved.target == spec.target and saved.task:
        if saved.task == "regression" or saved.classes:
            saved.check_frame(frame, need_target=True)
            return saved
    if saved is None:
        with warnings.catch_warnings(record=True):
            return infer_schema(
                frame,
                spec.target,
                task=spec.task,
                id_columns=spec.data.id_columns,
                sensitive=spec.sensitive,
            )
    # the saved columns stand: only the task and classes come from the data (the target's)
    declared = [*spec.data.id_columns, *spec.sensitive]
    task, classes = infer_target(frame, spec.target, task=spec.task, declared=declared)
    saved.target, saved.task, saved.classes = spec.target, task, classes
    saved.check_frame(frame, need_target=True)
    return saved


def process_started() -> float | None:
    """When this process started, as a ``time.monotonic()`` reading (None where unknown).

    The user's clock starts when they press enter, not when keizoku's modules are imported:
    interpreter start-up and imports count against ``--budget`` too. Linux only (/proc).
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    age = uptime - int(fields[19]) / ticks  # field 22 of stat: start time, in ticks since boot
    return time.monotonic() - age if 0 <= age < 3600 else None


def contention(started: float) -> float:
    """How much slower than an idle core this process has run since ``started`` (>= 1).

    Wall time over CPU time: start-up (imports, reading) is one busy thread, so on a
    machine shared with other jobs its wall time stretches by the share of a core it got.
    """
    cpu = time.process_time()
    if cpu < 0.2:
        return 1.0
    return min(max((time.monotonic() - started) / cpu, 1.0), MAX_CONTENTION)


def after_search_reserve(rows: int, columns: int, slowdown: float = 1.0) -> float:
    """Seconds to keep after the search for evidence, registration and the exit.

    The work without a time cap grows with the data's size and the machine's contention
    (``slowdown``); the capped evidence steps take their cap whatever the load.
    """
    return EVIDENCE_CAPPED_S + slowdown * _uncapped_after_search(rows, columns)


def _uncapped_after_search(rows: int, columns: int, model_mb: float = 0.0) -> float:
    """Seconds on an idle core of what follows the search without a time cap: registering
    (a model of ``model_mb``), the uncapped evidence steps and the exit."""
    cells = rows * max(columns, 1) / 1e6
    register = REGISTER_RESERVE_S + REGISTER_PER_MB_S * model_mb
    return register + EVIDENCE_FIXED_S + EVIDENCE_PER_MCELL_S * cells + EXIT_RESERVE_S


def model_size_mb(result: SearchResult) -> float:
    """The chosen model's pickled size, from its trials' measured sizes (× folds if a bag)."""
    board = result.leaderboard
    if board.empty or "chosen" not in board:
        return 0.0
    sizes = board.loc[board["chosen"] > 0, "size_mb"].fillna(0.0)
    folds = int(result.model.info.get("folds", 1)) if result.model.info.get("bagged") else 1
    return float(sizes.sum()) * folds


def evidence_time_left(
    end: float, result: SearchResult, rows: int, columns: int, slowdown: float, keep_s: float
) -> float:
    """Seconds left before ``end`` for the evidence's capped steps, once the rest is counted.

    The rest: the uncapped evidence steps, registering a model of the measured size, the
    caller's ``keep_s`` and the exit, each scaled by the contention measured so far.
    """
    rest = _uncapped_after_search(rows, columns, model_size_mb(result)) + keep_s
    return end - time.monotonic() - slowdown * rest


@dataclass
class TrainOutcome:
    name: str
    version: int
    alias: str
    result: SearchResult
    data_sha256: str
    schema_sha256: str
    # Seconds per phase of the command, in order: startup, read, search (its own phases
    # are in result.phases), evidence, registration; the lifecycle adds gates.
    phases: dict[str, float] = field(default_factory=dict)
    budget_s: float = 0.0
    started: float = 0.0  # time.monotonic() when the user's clock started


class _Phases:
    """Times the phases of one command and reports each as it ends."""

    def __init__(
        self, started: float, on_phase: PhaseCallback | None, earlier: Mapping[str, float]
    ) -> None:
        self.started = started
        self.seconds = dict(earlier)  # phases the caller timed before (already reported)
        self.mark = started + sum(self.seconds.values())
        self.on_phase = on_phase

    def end(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + (now - self.mark)
        self.mark = now
        if self.on_phase is not None:
            self.on_phase(name, now - self.started)


def train_project(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: Mapping[str, Any] | None = None,
    on_trial: Callable[[TrialResult, float], None] | None = None,
    frame: pd.DataFrame | None = None,
    extra_artifacts: ArtifactBuilder | None = None,
    started: float | None = None,
    keep_after_s: float = 0.0,
    on_phase: PhaseCallback | None = None,
    earlier_phases: Mapping[str, float] | None = None,
) -> TrainOutcome:
    """Train per the spec and register the result as a candidate (no alias, no traffic);
    nothing is registered on failure. ``keizoku.lifecycle.retrain.train_gated`` gates it.

    ``overrides``: keys of the spec's ``train:`` section (None values are ignored),
    plus ``warm_start`` (member configurations tried first). ``frame``: train on these
    rows instead of the spec's data (retraining); the saved schema and its roles apply.
    ``started`` (a ``time.monotonic()`` reading) is when the user's clock started; the
    budget then covers start-up, reading the data, evidence and registering the model,
    not only the search. ``keep_after_s``: seconds the caller needs after registration on
    an idle core (the gates), also taken from the budget; the work after the search is
    scaled by the contention measured so far. ``on_phase(name, elapsed)`` is called as each
    phase ends, ``elapsed`` counted from ``started``; ``earlier_phases``: phases the caller
    timed since ``started`` (e.g. reading the data to split off a hold-out).
    """
    from keizoku.registry.tracking import TrainingRun
    from keizoku.training.context import TrainingContext, TrainingData
    from keizoku.training.search import run_search

    clock = started if started is not None else time.monotonic()
    phases = _Phases(clock, on_phase, earlier_phases or {})
    if "startup" not in phases.seconds:
        phases.end("startup")
    spec, base = load_spec(spec_path)
    if spec.task == "clustering":  # no target: its own search and lifecycle
        raise UserInputError(
            f"'{spec_path}' is a clustering project: train it with `keizoku train` (or "
            "keizoku.clustering.lifecycle.train_clustering); this path trains binary, "
            "multiclass and regression models."
        )
    given = dict(overrides or {})
    warm_start: Sequence[Mapping[str, Any]] = given.pop("warm_start", None) or []
    cfg = merge_train(spec.train, given)
    if frame is None:
        frame, schema = load_training_data(spec, base)
    else:
        schema = training_schema(frame, spec, base, keep_classes=True)
    data = TrainingData.build(frame, schema)
    params = {
        "budget_s": cfg.budget,
        "max_trials": cfg.max_trials or "none",
        "search": cfg.search,
        "preset": cfg.preset,
        "metric": cfg.metric or "default",
        "rows": len(frame),
        "columns": frame.shape[1],
        "task": schema.task,
        "target": schema.target,
        "data_sha256": data.data_sha256,
        "schema_sha256": data.schema_sha256,
    }
    with TrainingRun(spec.project, params=params) as run:
        phases.end("read")

        def trial_done(t: TrialResult, elapsed: float) -> None:
            log_trial(run, t)
            if on_trial is not None:
                on_trial(t, elapsed)

        spent = time.monotonic() - clock
        slowdown = contention(clock)
        rows, columns = frame.shape
        reserve = after_search_reserve(rows, columns, slowdown) + slowdown * keep_after_s
        search_budget = max(cfg.budget - spent - reserve, min(5.0, cfg.budget))
        result = run_search(
            data,
            cfg.model_copy(update={"budget": search_budget}),
            warm_start=warm_start,
            on_trial=trial_done,
        )
        phases.end("search")
        left = evidence_time_left(
            clock + cfg.budget, result, rows, columns, contention(clock), keep_after_s
        )
        ctx = TrainingContext.build(spec.project, data, result, evidence_s=left)
        extra = (extra_artifacts,) if extra_artifacts is not None else ()
        version = register_candidate(run, ctx, extra=extra, on_built=phases.end)
    phases.end("registration")
    # A candidate: no alias until keizoku.lifecycle gates and admits it (alias set then).
    return TrainOutcome(
        spec.project,
        version,
        "",
        result,
        data.data_sha256,
        data.schema_sha256,
        phases.seconds,
        cfg.budget,
        clock,
    )


def log_trial(run: TrainingRun, t: TrialResult) -> None:
    """One finished trial of the search, as a child run of ``run``."""
    metrics = {
        "cv_score": t.mean,
        "cv_std": t.std,
        "fit_time_s": t.fit_time_s,
        "latency_ms": t.latency_ms,
        "size_mb": t.size_mb,
    }
    run.log_trial(t.number, t.family, t.params, metrics if t.fold_scores else {}, t.status)


def register_candidate(
    run: TrainingRun,
    ctx: TrainingContext,
    *,
    extra: Sequence[ArtifactBuilder] = (),
    on_built: Callable[[str], None] | None = None,
) -> int:
    """Log the search's metrics and artifacts to ``run``; register its model as a new version.

    The version is a candidate (no alias, no traffic) until ``keizoku.lifecycle`` gates and
    admits it. Used by ``train_project`` and by the Python API, so both register the same way.
    ``on_built("evidence")`` is called when the artifacts are built, before registering.
    """
    result, data, schema = ctx.result, ctx.data, ctx.schema
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
        files = _artifacts(Path(tmp), ctx)
        for builder in (*ARTIFACT_BUILDERS, *extra):
            files.update(builder(ctx, Path(tmp)))
        if on_built is not None:
            on_built("evidence")
        tags = {
            "keizoku.data_sha256": data.data_sha256,
            "keizoku.schema_sha256": data.schema_sha256,
            "keizoku.metric": metric,
            "keizoku.cv_score": f"{result.cv_score:.6g}",
            "keizoku.task": str(schema.task),
            "keizoku.members": ",".join(m.family for m in result.model.members),
        }
        return run.register(result.model, files, tags, _signature(data.frame, schema, result))


def _artifacts(tmp: Path, ctx: TrainingContext) -> dict[str, Path]:
    ctx.schema.save(tmp / "schema.yaml")
    ctx.result.leaderboard.to_csv(tmp / "leaderboard.csv", index=False)
    (tmp / "training.json").write_text(json.dumps(ctx.info.to_dict(), indent=2, default=str))
    return {
        "schema": tmp / "schema.yaml",
        "leaderboard": tmp / "leaderboard.csv",
        "training": tmp / "training.json",
    }


def _signature(frame: pd.DataFrame, schema: Schema, result: SearchResult) -> Any:
    from keizoku.registry.models import signature_of

    cols = [c.name for c in schema.features + schema.sensitive]
    # Column types as in the training data: MLflow refuses to cast int64 input to a double
    # column ("Can not safely convert"), which breaks `pyfunc.predict` on a plain CSV frame.
    sample = frame[cols].head(50)
    return signature_of(sample, lambda: result.model.score_frame(sample).drop(columns=cols))


def predict_file(
    ref: str,
    data: str,
    out: str,
    *,
    read: ReadOptions | None = None,
    batch_size: int = 10_000,
    on_batch: Callable[[int, int], None] | None = None,
    allow_unseen: bool = False,
    ray: str | None = None,
) -> int:
    """Score ``data`` with model ``ref`` in batches; write ``out`` (.csv or .parquet) atomically.

    ``ray``: score a Parquet file or folder with Ray Data on that cluster, streamed into
    ``out`` (the same rows out, in the same order; ``keizoku.distributed.ray_predict``).

    Rows are checked by the server's record validator (``keizoku.data.validate``): an unseen
    category or a missing feature is a DataError naming the column, value and first row,
    unless ``allow_unseen`` (then a KeizokuWarning counts them and they are scored).
    """
    from keizoku.registry.models import load_model

    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserInputError(f"Output '{out}' must end in .csv or .parquet.")
    model = load_model(ref)
    if ray and model.task != "forecast":  # streamed block by block into ``out``
        from keizoku.distributed.ray_predict import score_parquet

        return score_parquet(ray, model, data, out, batch_size, allow_unseen, on_batch)
    if model.task == "forecast":  # a history file in, the next horizon out (keizoku.forecast)
        scored = model.score_frame(read_table(data, read))
        if on_batch is not None:
            on_batch(len(scored), len(scored))
    else:
        scored = _score_batches(model, data, read, batch_size, on_batch, allow_unseen)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            scored.to_csv(tmp, index=False)
        else:
            scored.to_parquet(tmp, index=False)
    return len(scored)


def _score_batches(
    model: Any,
    data: str,
    read: ReadOptions | None,
    batch_size: int,
    on_batch: Callable[[int, int], None] | None,
    allow_unseen: bool,
) -> pd.DataFrame:
    frame = validate_frame(model.schema, read_table(data, read), allow_unseen=allow_unseen)
    parts = []
    for start in range(0, len(frame), batch_size):
        parts.append(model.score_frame(frame.iloc[start : start + batch_size]))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(frame)), len(frame))
    scored = pd.concat(parts) if parts else frame
    if len(scored) != len(frame):
        raise DataError(f"Scored {len(scored)} rows of {len(frame)}: nothing was written.")
    return scored
