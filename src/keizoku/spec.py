"""The project spec, ``keizoku.yaml``: every section is typed, every key has a default.

Sections and where their type lives (each refuses unknown keys; one helper,
:func:`keizoku.sections.section_error`, words every error)::

    project, target, task, schema, sensitive    -- here
    data:        DataSpec                        -- here
    train:       TrainSpec                       -- keizoku.training.config (the search config)
    serving:     ServingSpec                     -- here (no keys yet)
    monitoring:  DriftConfig                     -- keizoku.monitoring.drift
    retraining:  RetrainingPolicy                -- keizoku.lifecycle.policy
    fairness:    FairnessSpec                    -- keizoku.evaluation.fairness
    forecast:    ForecastSpec                    -- keizoku.forecast.spec (task: forecast)
    clustering:  ClusteringSpec                  -- keizoku.clustering.spec (task: clustering)
    images:      ImagesSpec                      -- keizoku.deep.spec (an image project)

Durations (``budget``, ``window``, ``every``, ...) are :data:`keizoku.duration.Duration`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from keizoku.clustering.spec import ClusteringSpec
from keizoku.data.ingest import ReadOptions
from keizoku.data.schema import Task
from keizoku.deep.spec import ImagesSpec
from keizoku.errors import UserInputError
from keizoku.evaluation.fairness import FairnessSpec
from keizoku.forecast.spec import ForecastSpec
from keizoku.home import atomic_write_text, find_spec
from keizoku.lifecycle.policy import RetrainingPolicy
from keizoku.monitoring.drift import DriftConfig
from keizoku.sections import Section, section_error
from keizoku.training.config import TrainSpec

__all__ = [
    "DEFAULT_SPEC",
    "DataSpec",
    "ServingSpec",
    "Spec",
    "TrainSpec",
    "load_spec",
    "project_read_options",
    "spec_from_dict",
    "spec_path",
]

DEFAULT_SPEC = "keizoku.yaml"
OPTIONAL_SECTIONS = ("serving", "monitoring", "retraining", "fairness", "clustering")


class DataSpec(Section):
    """Where the training data comes from and how to read it.

    The read keys (``header`` … ``allow_ragged_rows``) are :class:`ReadOptions`; every
    command that reads a data file of this project (predict, monitor, report, retrain,
    promote) reads it with them, so a headerless file stays readable after ``init``.
    """

    path: str | None = None
    sql: str | None = None
    db: str | None = None
    header: bool = True
    names: list[str] = Field(default_factory=list)
    sep: str | None = None
    na_values: list[str] = Field(default_factory=list)
    column_na_values: dict[str, list[str]] = Field(default_factory=dict)
    encoding: str = "utf-8-sig"
    drop: list[str] = Field(default_factory=list)
    id_columns: list[str] = Field(default_factory=list)
    allow_duplicate_columns: bool = False
    allow_ragged_rows: bool = False

    def read_options(self) -> ReadOptions:
        fields = {f: getattr(self, f) for f in ReadOptions.__dataclass_fields__ if f != "target"}
        return ReadOptions(**copy.deepcopy(fields))


class ServingSpec(Section):
    """The ``serving:`` section. It has no keys yet: ``keizoku serve`` takes flags.

    It exists so that a key written here is refused, not silently ignored.
    """


class Spec(Section):
    """``keizoku.yaml``."""

    project: str
    target: str = ""  # required unless task: clustering (checked below)
    task: Task | None = None
    schema_file: str = Field(default="schema.yaml", alias="schema")
    data: DataSpec = Field(default_factory=DataSpec)
    sensitive: list[str] = Field(default_factory=list)
    train: TrainSpec = Field(default_factory=TrainSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    monitoring: DriftConfig = Field(default_factory=DriftConfig)
    retraining: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)
    forecast: ForecastSpec | None = None  # task: forecast (keizoku.forecast.spec)
    clustering: ClusteringSpec = Field(default_factory=ClusteringSpec)
    images: ImagesSpec | None = None  # an image project (keizoku.deep.spec)

    def save(self, path: str | Path) -> None:
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for section in OPTIONAL_SECTIONS:  # written only when set: their defaults live in code
            if section not in self.model_fields_set:
                body.pop(section, None)
        if not body.get("target"):  # task: clustering has none
            body.pop("target", None)
        text = "# keizoku project spec: `keizoku train` reads this file.\n"
        text += yaml.safe_dump(body, sort_keys=False)
        atomic_write_text(path, text)


def spec_from_dict(raw: Any, source: str = DEFAULT_SPEC) -> Spec:
    """Validate a parsed spec; any error is one line naming section, key, value and fix."""
    if not isinstance(raw, dict):
        raise UserInputError(
            f"{source}: the spec must be a mapping of keys to values (project:, target:, ...), "
            f"not {type(raw).__name__}. Create one with: keizoku init DATA --target COLUMN"
        )
    try:
        spec = Spec.model_validate(raw)
    except PydanticValidationError as exc:
        raise section_error(exc, Spec, source=source) from exc
    if not spec.target and spec.task != "clustering":  # only clustering has no target
        raise UserInputError(f"{source}: target is required. Add `target: ...` in {source}.")
    if spec.target and spec.task == "clustering":
        raise UserInputError(
            f"{source}: task: clustering takes no target, but target is '{spec.target}'. "
            f"Remove the target: line, or set task to binary, multiclass or regression."
        )
    return spec


def spec_path(given: str | Path | None = None) -> Path | None:
    """The spec a command uses: ``given``, else the nearest ``keizoku.yaml`` upwards.

    ``keizoku.yaml`` itself (the default of ``--config``) is looked for upwards too, as git
    looks for its repository; any other path is taken as given.
    """
    if given is not None and Path(given) != Path(DEFAULT_SPEC):
        return Path(given)
    if Path(DEFAULT_SPEC).is_file():
        return Path(DEFAULT_SPEC)  # as the user would write it, in messages too
    return find_spec()


def project_read_options(model: str, config: str | Path | None = None) -> ReadOptions:
    """How to read data files for ``model``: its project's ``data:`` read keys, when the
    spec found (:func:`spec_path`) is that project's; the defaults otherwise."""
    path = spec_path(config)
    if path is None or not path.exists():
        return ReadOptions()
    spec, _ = load_spec(path)
    if spec.project != model:
        return ReadOptions()
    return dataclasses.replace(spec.data.read_options(), target=spec.target)


def load_spec(path: str | Path = DEFAULT_SPEC) -> tuple[Spec, Path]:
    """Read and validate a spec; relative data/schema paths resolve against its folder.

    The default ``keizoku.yaml`` is looked for in the current directory and above.
    """
    p = spec_path(path) or Path(path)
    if not p.exists():
        raise UserInputError(
            f"No spec at '{p}'. Create one with: keizoku init DATA --target COLUMN"
        )
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"'{p}' is not valid YAML: {exc}") from exc
    return spec_from_dict(raw, str(p)), p.resolve().parent
