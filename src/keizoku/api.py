"""keizoku from Python: train on a DataFrame, then predict, evaluate, explain, register, load.

    import keizoku
    model = keizoku.train(df, target="species", budget="30s")
    model.leaderboard()              # one row per trial (a DataFrame)
    model.predict(new_rows)          # a Series of labels / values
    model.register("penguins")       # gated and audited exactly as `keizoku train`
    same = keizoku.load("penguins@champion")
    groups = keizoku.cluster(df.drop(columns="species"), max_trials=12)
    groups.predict(new_rows)         # the cluster of each row; predict_proba: membership

Training is the CLI's path, not a second trainer: the typed ``TrainSpec`` (``budget``,
``max_trials``, ``families`` …), ``TrainingData``/``TrainingContext`` and ``run_search``.
Registering is the CLI's path too: the version is registered as a candidate, then
``gate_and_admit`` makes the first version champion or gates a later one against the
champion on a hold-out the caller gives, every step audited with the OS user as actor.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from keizoku.data.schema import Schema, Task, infer_schema
from keizoku.errors import DataError, NotFoundError, UserInputError
from keizoku.training.config import TrainSpec, merge_train
from keizoku.training.context import TrainingContext, TrainingData

if TYPE_CHECKING:
    from keizoku.lifecycle.retrain import Admission
    from keizoku.registry.servable import ServableModel

__all__ = [
    "Explanation",
    "Leaderboard",
    "Predictor",
    "check_frame",
    "cluster",
    "fit_frame",
    "load",
    "train",
]

DEFAULT_NAME = "model"  # the project name in training.json until register() names it


class Leaderboard(pd.DataFrame):  # type: ignore[misc]
    """The trials of a search, best first: a DataFrame that renders itself in Jupyter."""

    _metadata = ["metric"]
    metric: str

    @property
    def _constructor(self) -> type[Leaderboard]:
        return Leaderboard

    def _repr_html_(self) -> str:
        caption = f"Leaderboard · {len(self)} trial(s) · score = {getattr(self, 'metric', '')}"
        return _html_table(pd.DataFrame(self), caption, marked=self.get("chosen"))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.4g}"
    return html.escape(str(value))


def _html_table(frame: pd.DataFrame, caption: str, marked: Any = None) -> str:
    """A plain, escaped HTML table; rows where ``marked`` is truthy are bold."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        style = ' style="font-weight:bold"' if marked is not None and marked.iloc[i] else ""
        cells = "".join(f"<td>{_cell(v)}</td>" for v in row.tolist())
        rows.append(f"<tr{style}>{cells}</tr>")
    return (
        f'<table class="keizoku"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


@dataclass(frozen=True)
class Explanation:
    """Per-row feature contributions; ``expected + contributions.sum(axis=1) == output``."""

    contributions: pd.DataFrame  # one row per input row, one column per feature
    expected: pd.Series  # the model's average output (over the background sample)
    output: pd.Series  # the explained output: a probability (of ``output_class``) or a value
    prediction: pd.Series
    output_class: pd.Series  # the class whose probability is explained (None: regression)
    method: str

    def _repr_html_(self) -> str:
        caption = f"Contributions ({self.method}) to {len(self.contributions)} row(s)"
        return _html_table(self.contributions.reset_index(drop=True), caption)


@dataclass
class Predictor:
    """A trained model with its leaderboard; trained here or loaded from the registry.

    ``name``/``version`` are set once it is registered (or when it was loaded).
    """

    model: ServableModel
    board: pd.DataFrame
    cv_score: float
    background: pd.DataFrame | None = None
    name: str | None = None
    version: int | None = None
    context: TrainingContext | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        return str(self.model.task)

    @property
    def target(self) -> str:
        return str(self.model.schema.target)

    @property
    def classes(self) -> list[Any] | None:
        return None if self.task == "regression" else list(self.model.classes or [])

    @property
    def metric(self) -> str:
        return str(self.model.metric)

    def leaderboard(self) -> Leaderboard:
        """Every trial, best first: model family, CV score ± std, timings, status, chosen."""
        board = Leaderboard(self.board.copy())
        board.metric = self.metric
        return board

    def _rows(self, frame: Any) -> pd.DataFrame:
        from keizoku.data.validate import validate_frame

        check_frame(frame, "the data")
        return validate_frame(self.model.schema, frame)

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """One label (classifiers) or value (regression) per row, indexed like ``frame``."""
        rows = self._rows(frame)
        return pd.Series(self.model.predict(rows), index=frame.index, name="prediction")

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, one column per class (in ``classes`` order), rows like ``frame``."""
        if self.classes is None:
            raise UserInputError(
                f"predict_proba needs a classifier; target '{self.target}' is a regression "
                "target. Use predict() for its values."
            )
        raw = self.model.predict_raw(self._rows(frame))
        return pd.DataFrame(raw, index=frame.index, columns=self.classes)

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float | None]:
        """The CLI evaluation's metrics on labelled rows of ``frame`` (rows without a label
        are left out)."""
        from keizoku.evaluation.metrics import evaluate_predictions

        check_frame(frame, "the data")
        if self.target not in frame.columns:
            raise DataError(
                f"The data has no target column '{self.target}': evaluate() needs the true "
                "values. Add the column, or use predict() for unlabelled rows."
            )
        rows = frame[frame[self.target].notna()].reset_index(drop=True)
        if rows.empty:
            raise DataError(
                f"Target column '{self.target}' is missing in all {len(frame)} rows: "
                "evaluate() needs rows with a true value."
            )
        pred = self.model.predict_raw(self._rows(rows.drop(columns=[self.target])))
        y = self._codec().encode(list(rows[self.target]), where=f"target '{self.target}'")
        schema = self.model.schema
        found = evaluate_predictions(self.task, y, pred, self.classes, rows, schema, "data frame")
        return dict(found["metrics"])

    def _codec(self) -> Any:
        from keizoku.data.labels import LabelCodec

        return LabelCodec.from_schema(self.model.schema)

    def explain(self, frame: pd.DataFrame) -> Explanation:
        """Each feature's contribution to each row's prediction (the CLI's ``explain``)."""
        from keizoku.evaluation.explain import explain_row

        rows = self._rows(frame)
        features = self.model.feature_names
        schema = self.model.schema
        columns = [c.name for c in schema.features + schema.sensitive if c.name in rows.columns]
        # Rows as a JSON client sends them: explain_row checks them like a request.
        records = json.loads(rows[columns].to_json(orient="records", date_format="iso"))
        found = [explain_row(self.model, r, self.background, top=len(features)) for r in records]
        contrib = pd.DataFrame(
            [{c["feature"]: c["contribution"] for c in r["contributions"]} for r in found],
            index=frame.index,
            columns=features,
        )

        def column(key: str) -> pd.Series:
            return pd.Series([r[key] for r in found], index=frame.index, name=key)

        method = found[0]["method"] if found else ""
        return Explanation(
            contrib,
            column("expected_value"),
            column("output"),
            column("prediction"),
            column("output_class"),
            method,
        )

    def register(
        self, name: str, *, holdout: pd.DataFrame | None = None, reason: str = ""
    ) -> Admission:
        """Register this model as version N of ``name`` through the CLI's lifecycle.

        The first version of a model becomes champion (audited). When ``name`` has a
        champion, ``holdout`` (labelled rows this model was not trained on) is required:
        both are scored on it and the gates decide ``challenger`` or ``gated-fail``.
        """
        from keizoku.names import check_name

        if self.task == "clustering":
            raise UserInputError(
                "register() takes models from keizoku.train(); a clustering is registered, "
                "gated and audited by `keizoku train` on a task: clustering spec (`keizoku "
                "init DATA` without --target writes one)."
            )
        if self.context is None and self.name is not None:
            raise UserInputError(
                f"This model is already registered as {self.name}:{self.version}; register() "
                "is for a model trained with keizoku.train(). Promote it with `keizoku promote`."
            )
        if self.context is None:
            raise UserInputError(
                "This model was unpickled without its training context (the training rows "
                "and trials), which register() records. Register it before pickling."
            )
        check_name(name)
        if holdout is None and _champion(name) is not None:
            raise UserInputError(
                f"Model '{name}' already has a champion: pass holdout=<a labelled DataFrame "
                "this model was not trained on> so register() can gate the new version against "
                "it, as `keizoku train` does."
            )
        if holdout is not None:
            check_frame(holdout, "the hold-out", target=self.target)
        admission = _register(name, self.context, holdout, reason)
        self.name, self.version = name, admission.version
        return admission

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the model, not the training context (the training rows and trials)."""
        return {**self.__dict__, "context": None}

    def _repr_html_(self) -> str:
        members = ", ".join(f"{m.family}×{m.weight:g}" for m in self.model.members)
        where = f"{self.name}:{self.version}" if self.name else "not registered"
        facts = [
            ("target", self.target),
            ("task", self.task),
            ("classes", ", ".join(map(str, self.classes)) if self.classes else "—"),
            ("features", ", ".join(self.model.feature_names)),
            ("model", members),
            (f"CV {self.metric}", f"{self.cv_score:.4f}"),
            ("registry", where),
        ]
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts
        )
        return f'<table class="keizoku">{rows}</table>{self.leaderboard().head(10)._repr_html_()}'

    def __repr__(self) -> str:
        where = f" {self.name}:{self.version}" if self.name else ""
        return f"<keizoku Predictor{where}: {self.task} on '{self.target}', {self.metric}>"


def check_frame(frame: Any, what: str, *, target: str | None = None) -> pd.DataFrame:
    """``frame`` when it is a non-empty DataFrame (with ``target``, not all missing)."""
    if not isinstance(frame, pd.DataFrame):
        raise UserInputError(
            f"{what.capitalize()} must be a pandas DataFrame, not {type(frame).__name__}: "
            "build one with pd.DataFrame(...) or pd.read_csv(PATH)."
        )
    if frame.empty:
        raise DataError(
            f"{what.capitalize()} has no rows (shape {frame.shape}): pass a frame with rows."
        )
    dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if dup:
        raise DataError(
            f"{what.capitalize()} has duplicate column name(s) {dup}: rename them so each "
            "column has its own name (df.columns = [...])."
        )
    if target is not None:
        if target not in frame.columns:
            from keizoku.names import closest

            best = closest(target, [str(c) for c in frame.columns])
            hint = f"did you mean '{best}'?" if best else f"columns are {list(frame.columns)}."
            raise DataError(f"Target column '{target}' is not in {what}; {hint}")
        if frame[target].isna().all():
            raise DataError(
                f"Target column '{target}' is missing in all {len(frame)} rows of {what}: "
                "pass the column that holds the labels, or fill it."
            )
    return frame


def fit_frame(
    frame: pd.DataFrame,
    target: str,
    cfg: TrainSpec,
    *,
    schema: Schema | None = None,
    task: Task | None = None,
    id_columns: Sequence[str] = (),
    sensitive: Sequence[str] = (),
) -> Predictor:
    """Search per ``cfg`` on ``frame`` (the CLI's path); ``schema`` skips inference."""
    from keizoku.evaluation.evidence import BACKGROUND_ROWS
    from keizoku.training.search import run_search

    if schema is None:
        schema = infer_schema(
            frame, target, task=task, id_columns=list(id_columns), sensitive=list(sensitive)
        )
    data = TrainingData.build(frame, schema)
    result = run_search(data, cfg)
    ctx = TrainingContext.build(DEFAULT_NAME, data, result)
    columns = [c.name for c in schema.features + schema.sensitive]
    rows = ctx.data.frame
    sample = rows[columns].sample(min(len(rows), BACKGROUND_ROWS), random_state=0)
    return Predictor(result.model, result.leaderboard, result.cv_score, sample, context=ctx)


def train(
    frame: pd.DataFrame,
    target: str,
    *,
    budget: float | str = "60s",
    task: Task | None = None,
    max_trials: int | None = None,
    families: Sequence[str] | None = None,
    preset: str | None = None,
    metric: str | None = None,
    search: str | None = None,
    folds: int | None = None,
    seed: int | None = None,
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    ensemble: bool | None = None,
    id_columns: Sequence[str] = (),
    sensitive: Sequence[str] = (),
) -> Predictor:
    """Train on an in-memory DataFrame, as ``keizoku train`` does on a file.

    The keyword arguments are the spec's ``train:`` keys (``families`` is ``models``);
    ``max_trials`` makes the search deterministic. Nothing is registered until
    :meth:`Predictor.register`.
    """
    check_frame(frame, "the training frame", target=target)
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    given: Mapping[str, Any] = {
        "budget": budget,
        "max_trials": max_trials,
        "models": list(families) if families is not None else None,
        "preset": preset,
        "metric": metric,
        "search": search,
        "folds": folds,
        "seed": seed,
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
        "ensemble": ensemble,
    }
    cfg = merge_train(TrainSpec(), given)
    return fit_frame(frame, target, cfg, task=task, id_columns=id_columns, sensitive=sensitive)


def cluster(
    frame: pd.DataFrame,
    *,
    budget: float | str = "60s",
    max_trials: int | None = None,
    algorithms: Sequence[str] | None = None,
    k_min: int | None = None,
    k_max: int | None = None,
    scaling: str | None = None,
    choose: str | None = None,
    seed: int | None = None,
) -> Predictor:
    """Cluster the rows of an in-memory DataFrame, as ``keizoku train`` does for a
    ``task: clustering`` spec (every column a feature; the keyword arguments are the
    ``clustering:`` keys). ``predict`` gives each row's cluster, ``predict_proba`` its
    membership of each, ``leaderboard()`` the candidates, ``model.info`` the choice and
    each cluster's profile (``profile``). ``max_trials`` makes the search deterministic.
    """
    from keizoku.clustering.spec import ClusteringSpec
    from keizoku.clustering.train import fit_clustering
    from keizoku.duration import parse_duration
    from keizoku.sections import validate_section

    check_frame(frame, "the data")
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    keys = {"max_trials": max_trials, "algorithms": algorithms, "k_min": k_min, "k_max": k_max,
            "scaling": scaling, "choose": choose, "seed": seed}  # fmt: skip
    given = {k: v for k, v in keys.items() if v is not None}
    cfg = validate_section(ClusteringSpec, given, "clustering", source="keizoku.cluster()")
    seconds = parse_duration(budget, what="budget")
    schema = infer_schema(frame, None, task="clustering")
    result = fit_clustering(frame, schema, cfg, budget_s=seconds)
    result.model.info["profile"] = result.profile
    board = result.leaderboard.reset_index(drop=True)
    return Predictor(result.model, board, result.silhouette)


def load(ref: str) -> Predictor:
    """A registered version (``NAME``, ``NAME@alias``, ``NAME:3``), its files hash-verified."""
    from keizoku.registry import load_model, resolve, version_artifact

    name, version = resolve(ref)
    model = load_model(f"{name}:{version}")
    exact = f"{name}:{version}"
    board = pd.read_csv(version_artifact(exact, "leaderboard.csv"))
    try:
        background = pd.DataFrame(
            json.loads(version_artifact(exact, "background.json").read_text())
        )
    except NotFoundError:
        background = None
    cv = float(model.info.get("cv_score", float("nan")))
    return Predictor(model, board, cv, background, name, version)


def _champion(name: str) -> int | None:
    from keizoku.registry import resolve

    try:
        return resolve(f"{name}@champion")[1]
    except NotFoundError:
        return None


def _register(
    name: str, trained: TrainingContext, holdout: pd.DataFrame | None, reason: str
) -> Admission:
    """Log the search as an MLflow run, register a candidate, gate and admit it (audited)."""
    from keizoku import audit
    from keizoku.lifecycle.gates import GateConfig
    from keizoku.lifecycle.retrain import _row_hashes, _undo_candidate, gate_and_admit
    from keizoku.project import log_trial, register_candidate
    from keizoku.registry import TrainingRun
    from keizoku.registry.models import delete_version

    ctx = TrainingContext.build(name, trained.data, trained.result)
    result, data, schema = ctx.result, ctx.data, ctx.schema
    params = {
        "source": "keizoku.train (Python)",
        "max_trials": result.max_trials or "none",
        "metric": result.metric.name,
        "rows": len(data.frame),
        "task": schema.task,
        "target": schema.target,
        "data_sha256": data.data_sha256,
        "schema_sha256": data.schema_sha256,
    }
    with TrainingRun(name, params=params) as run:
        for t in result.trials:
            log_trial(run, t)
        version = register_candidate(run, ctx, extra=(_row_hashes,))
    try:
        audit.record(
            name, "register", reason=reason, version=version,
            evidence={"data_sha256": data.data_sha256, "schema_sha256": data.schema_sha256,
                      "cv_score": result.cv_score, "metric": result.metric.name,
                      "source": "keizoku.train (Python)"},
        )  # fmt: skip
        return gate_and_admit(
            name, version, holdout, str(schema.target), GateConfig(), reason=reason
        )
    except BaseException as exc:
        _undo_candidate(name, version, None, exc, delete_version)
        raise
