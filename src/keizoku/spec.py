"""The project spec, ``keizoku.yaml``: every key has a default and is validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from keizoku.data.ingest import ReadOptions
from keizoku.errors import UserInputError
from keizoku.home import atomic_write_text

__all__ = ["Spec", "DataSpec", "TrainSpec", "load_spec", "parse_duration", "DEFAULT_SPEC"]

DEFAULT_SPEC = "keizoku.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
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


class TrainSpec(_Strict):
    """The search: budget, strategy, preset, metric and serving limits."""

    budget: str = "60s"
    search: Literal["bayes", "random", "grid"] = "bayes"
    preset: Literal["fast", "balanced", "best"] = "balanced"
    metric: str | None = None
    folds: int | None = Field(default=None, ge=2, le=20)
    models: list[str] | None = None
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    ensemble: bool = True
    seed: int = 0


class Spec(_Strict):
    """``keizoku.yaml``. Sections other issues add (serving, monitoring, ...) are free-form."""

    project: str
    target: str
    task: Literal["binary", "multiclass", "regression"] | None = None
    schema_file: str = Field(default="schema.yaml", alias="schema")
    data: DataSpec = Field(default_factory=DataSpec)
    sensitive: list[str] = Field(default_factory=list)
    train: TrainSpec = Field(default_factory=TrainSpec)
    serving: dict[str, Any] = Field(default_factory=dict)
    monitoring: dict[str, Any] = Field(default_factory=dict)
    retraining: dict[str, Any] = Field(default_factory=dict)
    fairness: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def save(self, path: str | Path) -> None:
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        text = "# keizoku project spec: `keizoku train` reads this file.\n"
        text += yaml.safe_dump(body, sort_keys=False)
        atomic_write_text(path, text)


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
    try:
        return Spec.model_validate(raw), p.resolve().parent
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UserInputError(
            f"'{p}': key '{where}' {first['msg'].lower()} (got {first.get('input')!r}). "
            "Fix the key in the spec."
        ) from exc


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$")


def parse_duration(text: str | float | int) -> float:
    """'90s', '2m', '1.5h', '60' → seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise UserInputError(
            f"Budget '{text}' is not a duration. Use a number of seconds or a suffix: 60s, 5m, 1h."
        )
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
