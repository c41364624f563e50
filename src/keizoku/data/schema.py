"""Infer, save and check a table's schema.

A schema lists each column's *kind* (what the values are) and *role* (what the
column is for). It is inferred once, saved as an editable YAML file next to the
spec, and used at training, at serving (request validation, OpenAPI) and by drift.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field

from keizoku.errors import DataError, KeizokuWarning, SchemaMismatchError, UserInputError
from keizoku.home import atomic_write_text
from keizoku.names import closest

__all__ = [
    "Column",
    "Schema",
    "infer_schema",
    "infer_target",
    "detect_task",
    "Kind",
    "Role",
    "Task",
]

Kind = Literal["numeric", "categorical", "boolean", "datetime", "text", "id"]
Role = Literal["feature", "target", "id", "ignored", "sensitive"]
Task = Literal["binary", "multiclass", "regression", "forecast", "clustering"]
# forecast: keizoku.forecast; clustering: no target (keizoku.clustering)

TRUE_TOKENS = {"true", "t", "yes", "y"}
FALSE_TOKENS = {"false", "f", "no", "n"}
MAX_CODED_LEVELS = 10


class Column(BaseModel):
    """One column: its name, kind, role and what values it allows."""

    name: str
    kind: Kind
    role: Role = "feature"
    dtype: Literal["float", "int", "str", "bool"] = "float"
    nullable: bool = True
    categories: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    note: str | None = None
    # text: MiniLM sentence embeddings as a second view beside TF-IDF (docs/text.md)
    embeddings: bool | None = None


class Schema(BaseModel):
    """The columns of a table, with the target and the task."""

    columns: list[Column]
    target: str | None = None
    task: Task | None = None
    classes: list[Any] | None = Field(default=None, description="class labels, in order")

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise UserInputError(_not_found(name, self.names, "the schema"))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.role == "feature"]

    @property
    def sensitive(self) -> list[Column]:
        return [c for c in self.columns if c.role == "sensitive"]

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def save(self, path: str | Path) -> None:
        text = "# keizoku schema: edit kinds/roles here; roles: feature, target, id, ignored, "
        text += "sensitive\n"
        text += yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()))

    def check_frame(self, frame: pd.DataFrame, *, need_target: bool = False) -> None:
        """Raise naming the columns that are missing from (or new in) ``frame``."""
        expected = [c.name for c in self.features + self.sensitive]
        if need_target and self.target:
            expected.append(self.target)
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            known = {c.name for c in self.columns}
            extra = [c for c in frame.columns if c not in known]
            hint = f" The data has column(s) the model never saw: {extra}." if extra else ""
            raise SchemaMismatchError(
                f"The data lacks column(s) {missing} that the model was trained with.{hint} "
                "Rename or add them so the columns match the training schema.",
                details={"missing": missing, "unexpected": extra},
            )


def _not_found(name: str, options: list[str], where: str = "the data") -> str:
    best = closest(name, options)
    if best:
        return f"Column '{name}' is not in {where}; did you mean '{best}'?"
    return f"Column '{name}' is not in {where}. Columns are: {options}"


def _bool_tokens(values: pd.Series) -> bool:
    tokens = {str(v).strip().lower() for v in values.unique()}
    return (
        len(tokens) == 2
        and tokens <= (TRUE_TOKENS | FALSE_TOKENS)
        and bool(tokens & TRUE_TOKENS)
        and bool(tokens & FALSE_TOKENS)
    )


def _looks_datetime(values: pd.Series) -> bool:
    sample = values.astype(str).head(200)
    if not sample.str.contains(r"\d{1,4}[-/:.]\d{1,2}", regex=True).mean() > 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.9)


def _infer_kind(series: pd.Series, n_rows: int) -> tuple[Kind, str | None]:
    values = series.dropna()
    nunique = int(values.nunique())
    if pd.api.types.is_bool_dtype(series):
        return "boolean", None
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", None
    if pd.api.types.is_numeric_dtype(series):
        is_int = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        if is_int and nunique == n_rows and n_rows > 20:
            arr = values.to_numpy()
            if np.all(np.diff(arr) > 0):
                return "id", "unique, increasing integers: looks like a row id"
        if is_int and nunique <= MAX_CODED_LEVELS and nunique > 2:
            return "categorical", f"integer-coded with {nunique} levels"
        return "numeric", None
    if _bool_tokens(values):
        return "boolean", None
    text = values.astype(str)
    if _looks_datetime(text):
        return "datetime", None
    ratio = nunique / max(len(values), 1)
    words = float(text.map(_words).mean()) if len(text) else 0.0
    if ratio > 0.5 and words >= 3:
        return "text", f"free text ({nunique} distinct values, ~{words:.0f} words each)"
    if ratio > 0.5 and nunique > 20:
        return "id", f"{nunique} distinct values in {len(values)} rows: looks like an identifier"
    if words >= 5 and nunique > 50:
        return "text", None
    return "categorical", None


def _words(value: str) -> float:
    """Words in ``value``: whitespace-separated, or about one per two kana/kanji (Japanese
    has no spaces, docs/text.md)."""
    from keizoku.features.text import japanese_chars

    return max(len(value.split()), japanese_chars(value) / 2)


def _label_encoded(values: pd.Series) -> bool:
    """Codes 0..K-1 or 1..K, every class well represented: classes, not a count to regress.

    (Abalone's rings 1..29 have gaps and one-row values; letter's 1..26 are near-uniform.)
    """
    counts = values.value_counts()
    k = len(counts)
    contiguous = set(counts.index) in (set(range(k)), set(range(1, k + 1)))
    return contiguous and int(counts.min()) >= max(5, 0.2 * len(values) / k)


def detect_task(target: pd.Series) -> Task:
    values = target.dropna()
    nunique = values.nunique()
    if nunique == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values):
        is_int = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        few = nunique / max(len(values), 1) < 0.05
        if is_int and nunique <= 20 and few:
            return "multiclass"
        if is_int and few and nunique <= 100 and _label_encoded(values.astype(int)):
            return "multiclass"  # label-encoded classes such as 1..26 for letters
        return "regression"
    return "multiclass"


def _check_target(frame: pd.DataFrame, target: str, task: Task) -> None:
    values = frame[target].dropna()
    if values.empty:
        raise DataError(f"Target '{target}' has no values: every row is missing.")
    if task in ("binary", "multiclass") and values.nunique() < 2:
        raise DataError(
            f"Target '{target}' has only one class ({values.iloc[0]!r}) in {len(values)} rows: "
            "a classifier needs at least two. Check the filter or pick another target."
        )
    if task == "binary" and values.nunique() > 2:
        raise DataError(
            f"Target '{target}' has {values.nunique()} classes, not 2: use --task multiclass."
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(values):
        bad = values[pd.to_numeric(values, errors="coerce").isna()].iloc[0]
        raise DataError(
            f"Target '{target}' is not numeric (for example {bad!r}), so it cannot be a "
            "regression target. Use --task binary/multiclass, or clean the column."
        )


def _numeric_dtype(series: pd.Series) -> Literal["float", "int"]:
    values = series.dropna()
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if len(values) and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)):
        return "int"
    return "float"


def infer_schema(
    frame: pd.DataFrame,
    target: str | None = None,
    *,
    task: Task | None = None,
    id_columns: list[str] | None = None,
    sensitive: list[str] | None = None,
) -> Schema:
    """Infer a schema from ``frame``; validate the target and pick the task."""
    id_columns = list(id_columns or [])
    sensitive = list(sensitive or [])
    names = list(frame.columns)
    classes = None
    if target is not None:
        task, classes = infer_target(frame, target, task=task, declared=id_columns + sensitive)
    else:
        _require(frame, id_columns + sensitive)
    n_rows = len(frame)
    columns: list[Column] = []
    for name in names:
        series = frame[name]
        nulls = int(series.isna().sum())
        if name == target:
            columns.append(_target_column(series, name, task))
            continue
        if nulls == n_rows:
            warnings.warn(
                f"Column '{name}' is missing in every row; it is ignored.",
                KeizokuWarning,
                stacklevel=2,
            )
            columns.append(Column(name=name, kind="numeric", role="ignored", note="all missing"))
            continue
        kind, note = _infer_kind(series, n_rows)
        role: Role = "feature"
        if name in id_columns:
            kind, role, note = "id", "id", "declared id"
        elif kind == "id":
            role = "id"
        elif name in sensitive:
            role = "sensitive"
        if series.dropna().nunique() == 1 and role == "feature":
            role, note = "ignored", "constant"
        columns.append(_describe(series, name, kind, role, note, nulls))
    schema = Schema(columns=columns, target=target, task=task)
    if classes is not None:
        schema.classes = classes
    return schema


def infer_target(
    frame: pd.DataFrame, target: str, *, task: Task | None = None, declared: Sequence[str] = ()
) -> tuple[Task, list[Any] | None]:
    """What :func:`infer_schema` infers from the target alone: the task (``task`` when given,
    else detected from the values) and the classes in order (None unless binary or
    multiclass). The target is checked, and it and the ``declared`` columns (ids, sensitive)
    must be in ``frame``, as for :func:`infer_schema`."""
    _require(frame, [target, *declared])
    task = task or detect_task(frame[target])
    _check_target(frame, target, task)
    if task not in ("binary", "multiclass"):
        return task, None
    return task, sorted(frame[target].dropna().unique().tolist(), key=_sort_key)


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    names = list(frame.columns)
    for name in columns:
        if name not in names:
            raise UserInputError(_not_found(name, names))


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float | np.number) else (1, str(v))


def _target_column(series: pd.Series, name: str, task: Task | None) -> Column:
    dtype: Literal["float", "int", "str", "bool"] = "str"
    if pd.api.types.is_bool_dtype(series):
        dtype = "bool"
    elif pd.api.types.is_numeric_dtype(series):
        dtype = _numeric_dtype(series)
    kind: Kind = "numeric" if task == "regression" else "categorical"
    return Column(name=name, kind=kind, role="target", dtype=dtype, nullable=False)


def _describe(
    series: pd.Series, name: str, kind: Kind, role: Role, note: str | None, nulls: int
) -> Column:
    values = series.dropna()
    col = Column(name=name, kind=kind, role=role, nullable=nulls > 0, note=note)
    if pd.api.types.is_bool_dtype(series):
        col.dtype = "bool"
    elif pd.api.types.is_numeric_dtype(series):
        col.dtype = _numeric_dtype(series)
        if len(values):
            col.min, col.max = float(values.min()), float(values.max())
    else:
        col.dtype = "str"
    if kind in ("categorical", "boolean"):
        cats = values.unique().tolist()
        if col.dtype == "int":
            cats = [int(c) for c in cats]
        col.categories = sorted(cats, key=_sort_key)
    return col
