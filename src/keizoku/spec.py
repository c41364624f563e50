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

Durations (``budget``, ``window``, ``every``, ...) are :data:`keizoku.duration.Duration`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from keizoku.data.ingest import ReadOptions
from keizoku.errors import UserInputError
from keizoku.evaluation.fairness import FairnessSpec
from keizoku.home import atomic_write_text
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
    "spec_from_dict",
]

DEFAULT_SPEC = "keizoku.yaml"
OPTIONAL_SECTIONS = ("serving", "monitoring", "retraining", "fairness")


class DataSpec(Section):
    """Where the training data comes from and how to read it."""

    path: str | None = None
    sql: str | None = None
    db: str | None = None
    header: bool = True
    sep: str | None = None
    na_values: list[str] = Field(default_factory=list)
    encoding: str = "utf-8-sig"
    drop: list[str] = Field(default_factory=list)
    id_columns: list[str] = Field(default_factory=list)

    def read_options(self) -> ReadOptions:
        return ReadOptions(
            header=self.header,
            sep=self.sep,
            na_values=list(self.na_values),
            encoding=self.encoding,
            drop=list(self.drop),
            sql=self.sql,
            db=self.db,
        )


class ServingSpec(Section):
    """The ``serving:`` section. It has no keys yet: ``keizoku serve`` takes flags.

    It exists so that a key written here is refused, not silently ignored.
    """


class Spec(Section):
    """``keizoku.yaml``."""

    project: str
    target: str
    task: Literal["binary", "multiclass", "regression"] | None = None
    schema_file: str = Field(default="schema.yaml", alias="schema")
    data: DataSpec = Field(default_factory=DataSpec)
    sensitive: list[str] = Field(default_factory=list)
    train: TrainSpec = Field(default_factory=TrainSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    monitoring: DriftConfig = Field(default_factory=DriftConfig)
    retraining: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)

    def save(self, path: str | Path) -> None:
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for section in OPTIONAL_SECTIONS:  # written only when set: their defaults live in code
            if section not in self.model_fields_set:
                body.pop(section, None)
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
        return Spec.model_validate(raw)
    except PydanticValidationError as exc:
        raise section_error(exc, Spec, source=source) from exc


def load_spec(path: str | Path = DEFAULT_SPEC) -> tuple[Spec, Path]:
    """Read and validate a spec; relative data/schema paths resolve against its folder."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(
            f"No spec at '{p}'. Create one with: keizoku init DATA --target COLUMN"
        )
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"'{p}' is not valid YAML: {exc}") from exc
    return spec_from_dict(raw, str(p)), p.resolve().parent
