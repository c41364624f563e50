"""Profile a table: what each column holds, what is wrong with it, what leaks the target.

``profile_frame(frame, schema)`` returns a :class:`Profile`: table size, duplicate
rows, memory; per column its kind and role (from the schema), missing share,
distinct count, top values or min/mean/max, and flags; the target balance; and
*leakage suspects*, features that predict the target almost perfectly on their own.

A leakage suspect is found with a one-feature model scored out of fold (3-fold CV on
at most ``LEAK_SAMPLE_ROWS`` rows): a depth-limited decision tree for numeric and
date columns, a smoothed group-by mapping (value -> class shares or mean) for the
others. Classification is scored by (macro one-vs-rest) AUC, regression by the
larger of R2 and |Spearman|; a score of at least ``LEAK_THRESHOLD`` is suspect.

Beyond single columns: *associations* between columns (numeric pairs: Pearson and
Spearman; categorical pairs: bias-corrected Cramér's V; numeric-categorical: the
correlation ratio η), on at most ``ASSOC_SAMPLE_ROWS`` rows; *missing-value
co-occurrence* (pairs of columns whose missing indicators move together); and
warnings for *zero-inflated* numeric columns and for numeric *codes that look like
missing* (a 0 far below every other value, e.g. pima's glucose, or a sentinel such as
-999 or 9999 far beyond the rest).

The profile prints as rich tables (``Profile.rich_tables``), serialises to JSON
(``Profile.to_dict``) and renders as one self-contained HTML file
(``write_profile_html``: ``profile_context`` feeds the ``profile`` page of
:mod:`keizoku.reporting`).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from keizoku.data.schema import Schema
from keizoku.errors import DataError, SchemaMismatchError

__all__ = [
    "Association",
    "MissingTogether",
    "associations",
    "cramers_v",
    "correlation_ratio",
    "missing_together",
    "ClassShare",
    "ColumnProfile",
    "LeakSuspect",
    "Profile",
    "TargetBalance",
    "ValueCount",
    "profile_context",
    "profile_frame",
    "write_profile_html",
]

LEAK_THRESHOLD = 0.98  # out-of-fold AUC (classification) or R2/|Spearman| (regression)
LEAK_SAMPLE_ROWS = 20_000  # rows used by the leakage checks (a seeded random sample)
LEAK_FOLDS = 3
LEAK_MIN_ROWS = 30  # fewer labelled rows than this: no leakage check
TREE_DEPTH = 6  # depth of the one-feature tree: enough for a noisy copy, not for luck
REGRESSION_TREE_DEPTH = 8  # 256 steps: a noisy copy of a numeric target reaches R2 ~ 1
HIGH_CARDINALITY = 50  # distinct levels above which a categorical column is flagged
ID_LIKE_SHARE = 0.95  # distinct / non-missing share above which a string column looks like an id
HIGH_MISSING_SHARE = 0.5
IMBALANCE_SHARE = 0.05  # a class below this share of rows makes the target "imbalanced"
TOP_VALUES = 5
MAX_BINS = 30  # bins of a numeric column's histogram in the HTML page
MAX_BARS = 10  # values of a categorical column's bar chart in the HTML page
BAR_KINDS = ("categorical", "boolean")  # kinds charted as top-value bars
DROP_HINT = "spec key data.drop"

FLAG_CONSTANT = "constant"
FLAG_ALL_MISSING = "all-missing"
FLAG_DUPLICATE = "duplicate"
FLAG_ID_LIKE = "id-like"
FLAG_HIGH_CARDINALITY = "high-cardinality"
FLAG_HIGH_MISSING = "high-missing"
FLAG_LEAK = "leak-suspect"
FLAG_ZERO_INFLATED = "zero-inflated"
FLAG_MISSING_CODE = "missing-code"
ZERO_INFLATED_SHARE = 0.3  # share of exact zeros from which a numeric column is flagged
CODE_GAP = 5.0  # a code sits this many typical value spacings away from every other value
# ... and a 0 this share of the median non-zero value below the smallest one (pima: glucose
# 44/117, blood pressure 24/72, skin 7/29, BMI 18/32; breast cancer's real zeros: 0.17)
ZERO_GAP = 0.2
SENTINELS = (-999999.0, -99999.0, -9999.0, -999.0, -99.0, 99.0, 999.0, 9999.0, 99999.0,
             999999.0)  # fmt: skip
ASSOC_SAMPLE_ROWS = 20_000
ASSOC_MAX_COLUMNS = 40  # columns compared pairwise (features and target, widest first dropped)
ASSOC_MAX_LEVELS = 50  # levels kept per categorical column (the rest pooled)
ASSOC_SHOWN = 15  # strongest pairs in the terminal and the HTML page
STRONG_ASSOCIATION = 0.95  # |r|, V or η from which a pair is called redundant
MISSING_TOGETHER = 0.5  # correlation of two missing indicators reported as co-occurring


@dataclass
class ValueCount:
    """One frequent value of a column, as text, with its count and share of rows."""

    value: str
    count: int
    share: float


@dataclass
class ColumnProfile:
    """What one column holds; ``stats`` for numeric columns, ``top`` for the others."""

    name: str
    kind: str
    role: str
    dtype: str
    missing_share: float
    distinct: int
    top: list[ValueCount] = field(default_factory=list)
    stats: dict[str, float] | None = None
    flags: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    missing_code: float | None = None  # a value that looks like a code for "missing"

    @property
    def summary(self) -> str:
        """A one-line summary: ``min … · mean … · max …`` or the top values with shares."""
        if self.stats:
            s = self.stats
            return f"min {_num(s['min'])} · mean {_num(s['mean'])} · max {_num(s['max'])}"
        return ", ".join(f"{_short(v.value)} {v.share:.0%}" for v in self.top[:3])


@dataclass
class ClassShare:
    """One target class: its label, row count and share of the labelled rows."""

    label: Any
    count: int
    share: float


@dataclass
class TargetBalance:
    """Class counts (classification) or a distribution summary (regression)."""

    target: str
    task: str
    labelled: int
    missing: int
    classes: list[ClassShare] = field(default_factory=list)
    summary: dict[str, float] | None = None


@dataclass
class LeakSuspect:
    """A feature that predicts the target almost perfectly on its own."""

    column: str
    metric: str
    score: float


@dataclass
class Association:
    """How strongly two columns go together (0 = not at all, 1 = one determines the other;
    Pearson and Spearman are signed)."""

    a: str
    b: str
    measure: str  # "pearson" | "spearman" | "cramers_v" | "correlation_ratio"
    value: float


@dataclass
class MissingTogether:
    """Two columns whose missing values co-occur."""

    a: str
    b: str
    both: int  # rows missing in both
    either: int  # rows missing in at least one
    correlation: float  # of the two missing indicators (phi)


@dataclass
class Profile:
    """The profile of a table; see the module docstring."""

    rows: int
    duplicate_rows: int
    memory_bytes: int
    columns: list[ColumnProfile]
    target: str | None = None
    task: str | None = None
    balance: TargetBalance | None = None
    leaks: list[LeakSuspect] = field(default_factory=list)
    leak_scores: dict[str, float] = field(default_factory=dict)
    leak_rows: int = 0
    associations: list[Association] = field(default_factory=list)  # strongest first
    association_rows: int = 0  # rows they were measured on (a seeded sample when larger)
    missing_together: list[MissingTogether] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        names = [c.name for c in self.columns]
        raise DataError(f"Column '{name}' is not in the profile. Columns are: {names}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["n_columns"] = self.n_columns
        result: dict[str, Any] = _jsonable(out)
        return result

    def rich_tables(self) -> list[Table]:
        tables = [_summary_table(self), _columns_table(self)]
        if self.balance is not None:
            tables.append(_balance_table(self.balance))
        if self.leaks:
            tables.append(_leak_table(self))
        if self.associations:
            tables.append(_association_table(self))
        if self.missing_together:
            tables.append(_missing_table(self))
        return tables


# ---------------------------------------------------------------- entry points


def profile_frame(frame: pd.DataFrame, schema: Schema) -> Profile:
    """Profile ``frame`` using the kinds and roles of ``schema`` (from ``infer_schema``)."""
    _check_inputs(frame, schema)
    columns = [
        _profile_column(frame[c.name], c.name, c.kind, c.role, c.dtype) for c in schema.columns
    ]
    _flag_duplicate_columns(frame, columns)
    prof = Profile(
        rows=len(frame),
        duplicate_rows=_duplicate_rows(frame),
        memory_bytes=int(frame.memory_usage(deep=True, index=True).sum()),
        columns=columns,
        target=schema.target,
        task=schema.task,
    )
    if schema.target is not None and schema.task is not None:
        prof.balance = _target_balance(frame[schema.target], schema.target, schema.task)
        _find_leaks(frame, schema, prof)
    prof.associations, prof.association_rows = associations(frame, columns)
    prof.missing_together = missing_together(frame, columns)
    prof.warnings = _warnings(prof)
    return prof


def write_profile_html(
    profile: Profile, frame: pd.DataFrame, schema: Schema, path: str | Path
) -> Path:
    """Write the profile as one self-contained HTML file (inline CSS and SVG) to ``path``."""
    from keizoku.reporting import write

    return write("profile", profile_context(profile, frame), path)


def profile_context(profile: Profile, frame: pd.DataFrame) -> dict[str, Any]:
    """What the profile page shows, as plain values (see ``keizoku.reporting``).

    A chart per column with values: a histogram for numeric columns, the top values as
    bars for categorical and boolean ones; each carries ``column`` (its ``data-column``).
    """
    title = "keizoku data profile"
    if profile.target:
        title += f" (target '{profile.target}')"
    return {
        "title": title,
        "summary": _summary_rows(profile),
        "warnings": list(profile.warnings),
        "balance": _balance_context(profile.balance),
        "leaks": [asdict(s) for s in profile.leaks],
        "leak_rows": profile.leak_rows,
        "associations": [
            {**asdict(x), "measure": _measure(x.measure)}
            for x in profile.associations[:ASSOC_SHOWN]
        ],
        "association_pairs": len(profile.associations),
        "association_rows": profile.association_rows,
        "missing_together": [asdict(m) for m in profile.missing_together[:ASSOC_SHOWN]],
        "columns": [
            {
                "name": c.name,
                "kind": c.kind,
                "role": c.role,
                "missing_share": c.missing_share,
                "distinct": c.distinct,
                "summary": c.summary,
                "flags": list(c.flags),
                "leak": FLAG_LEAK in c.flags,
            }
            for c in profile.columns
        ],
        "charts": [_column_chart(c, frame[c.name]) for c in _plotted_columns(profile)],
    }


def _balance_context(balance: TargetBalance | None) -> dict[str, Any] | None:
    if balance is None:
        return None
    return {
        "target": balance.target,
        "task": balance.task,
        "labelled": balance.labelled,
        "missing": balance.missing,
        "summary": dict(balance.summary) if balance.summary is not None else None,
        "classes": [asdict(c) for c in balance.classes],
    }


def _plotted_columns(profile: Profile) -> list[ColumnProfile]:
    """The columns that get a chart: numeric (histogram) and categorical/boolean (bars)."""
    return [c for c in profile.columns if c.distinct > 0 and (c.stats or c.kind in BAR_KINDS)]


def _column_chart(col: ColumnProfile, series: pd.Series) -> dict[str, Any]:
    """A chart spec (``keizoku.reporting.charts``) of one column's distribution."""
    if col.stats:
        values = series.dropna().to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        return {
            "kind": "histogram",
            "chart_id": f"histogram-{col.name}",
            "column": col.name,
            "title": f"{col.name}: histogram ({len(values):,} values)",
            "values": values,
            "xlabel": col.name,
            "ylabel": "rows",
            "bins": max(1, min(MAX_BINS, col.distinct)),
        }
    counts = series.dropna().astype(str).value_counts()
    shown = counts.head(MAX_BARS)
    return {
        "kind": "bar",
        "chart_id": f"values-{col.name}",
        "column": col.name,
        "title": f"{col.name}: top {len(shown)} of {len(counts)} values",
        "labels": [str(v) for v in shown.index],
        "values": [int(n) for n in shown],
        "xlabel": "rows",
        "ylabel": col.name,
        "tips": [f"{v}: {int(n):,} rows ({int(n) / len(series):.1%})" for v, n in shown.items()],
    }


def _check_inputs(frame: pd.DataFrame, schema: Schema) -> None:
    if len(frame) == 0:
        raise DataError(
            f"The table has no rows (columns: {list(frame.columns)[:10]}): nothing to profile. "
            "Check the file or the SQL filter."
        )
    missing = [c for c in schema.names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in schema.names]
    if missing or extra:
        raise SchemaMismatchError(
            f"The schema and the table differ: missing from the table {missing}, "
            f"not in the schema {extra}. Infer the schema from this table "
            "(infer_schema(frame, target)) or edit schema.yaml to match.",
            details={"missing": missing, "unexpected": extra},
        )


# ---------------------------------------------------------------- columns


def _profile_column(
    series: pd.Series, name: str, kind: str, role: str, dtype: str
) -> ColumnProfile:
    values = series.dropna()
    prof = ColumnProfile(
        name=name,
        kind=kind,
        role=role,
        dtype=dtype,
        missing_share=float(series.isna().mean()),
        distinct=int(values.nunique()),
    )
    if kind == "numeric" and pd.api.types.is_numeric_dtype(values) and len(values):
        prof.stats = _numeric_stats(values)
        prof.missing_code = _missing_code(values.to_numpy(dtype=float))
    elif len(values):
        prof.top = _top_values(values, len(series))
    prof.flags = _column_flags(prof, len(values))
    return prof


def _numeric_stats(values: pd.Series) -> dict[str, float]:
    arr = values.to_numpy(dtype=float)
    return {
        "min": float(arr.min()),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "zeros": float((arr == 0).mean()),
    }


def _missing_code(arr: np.ndarray) -> float | None:
    """A value that looks like a code for "missing": a 0 in a column of positive values
    that starts far above 0 (pima's glucose 0 beside 44…199), or a sentinel (-999, 9999…)
    at either end, far from every other value. None when there is none."""
    distinct = np.unique(arr)
    if len(distinct) < 3:
        return None
    step = float(np.median(np.diff(distinct)))  # the typical spacing of the values
    candidates = [0.0] if distinct[0] == 0 else []
    candidates += [v for v in SENTINELS if v in (distinct[0], distinct[-1])]
    for code in candidates:
        rest = distinct[distinct != code]
        gap = float(rest[0] - code) if code <= rest[0] else float(code - rest[-1])
        if code == 0 and (rest[0] < 0 or gap < ZERO_GAP * float(np.median(arr[arr != 0]))):
            continue  # zero inside the range, or close to the smallest values
        if gap > CODE_GAP * step and gap > 0:
            return code
    return None


def _top_values(values: pd.Series, n_rows: int) -> list[ValueCount]:
    counts = values.value_counts().head(TOP_VALUES)
    return [ValueCount(str(v), int(n), int(n) / n_rows) for v, n in counts.items()]


def _column_flags(prof: ColumnProfile, non_missing: int) -> list[str]:
    flags: list[str] = []
    if prof.distinct == 0:
        return [FLAG_ALL_MISSING]
    if prof.distinct == 1:
        flags.append(FLAG_CONSTANT)
    if prof.missing_share > HIGH_MISSING_SHARE:
        flags.append(FLAG_HIGH_MISSING)
    if prof.missing_code is not None:
        flags.append(FLAG_MISSING_CODE)
    if prof.stats and prof.stats["zeros"] >= ZERO_INFLATED_SHARE and prof.distinct > 2:
        flags.append(FLAG_ZERO_INFLATED)
    if prof.role == "target":
        return flags
    if _is_id_like(prof, non_missing):
        flags.append(FLAG_ID_LIKE)
    elif prof.kind == "categorical" and prof.distinct > HIGH_CARDINALITY:
        flags.append(FLAG_HIGH_CARDINALITY)
    return flags


def _is_id_like(prof: ColumnProfile, non_missing: int) -> bool:
    if prof.kind == "id" or prof.role == "id":
        return True
    if prof.dtype != "str" or prof.kind in ("text", "datetime") or non_missing <= 20:
        return False
    return prof.distinct >= ID_LIKE_SHARE * non_missing


def _flag_duplicate_columns(frame: pd.DataFrame, columns: list[ColumnProfile]) -> None:
    """Flag each column whose values equal an earlier column's, row for row."""
    first_by_hash: dict[str, str] = {}
    for col in columns:
        if FLAG_ALL_MISSING in col.flags or FLAG_CONSTANT in col.flags:
            continue
        key = _column_hash(frame[col.name])
        earlier = first_by_hash.get(key)
        if earlier is not None and _same_values(frame[earlier], frame[col.name]):
            col.duplicate_of = earlier
            col.flags.append(FLAG_DUPLICATE)
        else:
            first_by_hash.setdefault(key, col.name)


def _column_hash(series: pd.Series) -> str:
    hashed = pd.util.hash_pandas_object(series.astype(object), index=False).to_numpy()
    return hashlib.sha1(hashed.tobytes()).hexdigest()


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    left, right = a.astype(object).to_numpy(), b.astype(object).to_numpy()
    both_missing = pd.isna(left) & pd.isna(right)
    return bool(np.all(both_missing | (left == right)))


def _duplicate_rows(frame: pd.DataFrame) -> int:
    try:
        return int(frame.duplicated().sum())
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        return int(frame.astype(str).duplicated().sum())


# ---------------------------------------------------------------- target


def _target_balance(series: pd.Series, name: str, task: str) -> TargetBalance:
    values = series.dropna()
    balance = TargetBalance(
        target=name, task=task, labelled=len(values), missing=int(series.isna().sum())
    )
    if task == "regression":
        balance.summary = _numeric_stats(values)
        arr = values.to_numpy(dtype=float)
        balance.summary.update({f"p{q}": float(np.percentile(arr, q)) for q in (5, 25, 75, 95)})
        return balance
    counts = values.value_counts()
    balance.classes = [
        ClassShare(_native(label), int(n), int(n) / len(values)) for label, n in counts.items()
    ]
    return balance


# ---------------------------------------------------------------- leakage


def _find_leaks(frame: pd.DataFrame, schema: Schema, prof: Profile) -> None:
    target = str(schema.target)
    data = frame.loc[frame[target].notna()]
    if len(data) < LEAK_MIN_ROWS:
        return
    if len(data) > LEAK_SAMPLE_ROWS:
        data = data.sample(LEAK_SAMPLE_ROWS, random_state=0)
    prof.leak_rows = len(data)
    candidates = [
        c
        for c in prof.columns
        if c.role != "target" and not {FLAG_CONSTANT, FLAG_ALL_MISSING} & set(c.flags)
    ]
    regression = schema.task == "regression"
    scorer = _RegressionScorer(data[target]) if regression else _ClassScorer(data[target])
    for col in candidates:
        metric, score = scorer.score(data[col.name], col.kind)
        prof.leak_scores[col.name] = score
        if score >= LEAK_THRESHOLD:
            prof.leaks.append(LeakSuspect(col.name, metric, score))
            col.flags.append(FLAG_LEAK)
    prof.leaks.sort(key=lambda s: -s.score)


def _as_number(series: pd.Series, kind: str) -> np.ndarray | None:
    """The column as floats for a tree, or None when it is better grouped by value."""
    if kind == "datetime":
        return _as_seconds(series)
    if kind in ("numeric", "id") and pd.api.types.is_numeric_dtype(series):
        if pd.api.types.is_bool_dtype(series):
            return None
        return np.asarray(series.to_numpy(dtype=float, na_value=np.nan))
    return None


def _as_seconds(series: pd.Series) -> np.ndarray | None:
    """Dates as seconds since 1970 (NaN where missing), or None when they do not parse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamps = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
        except (TypeError, ValueError):
            return None
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return np.asarray(seconds.to_numpy(dtype=float, na_value=np.nan))


def _groups(series: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(series.astype(object), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64)


def _folds(n_rows: int, labels: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    index = np.zeros(n_rows)
    if labels is not None and np.bincount(labels).min() >= LEAK_FOLDS:
        split = StratifiedKFold(LEAK_FOLDS, shuffle=True, random_state=0).split(index, labels)
    else:
        split = KFold(LEAK_FOLDS, shuffle=True, random_state=0).split(index)
    return list(split)


class _ClassScorer:
    """Out-of-fold AUC of a one-feature model for a class target."""

    def __init__(self, target: pd.Series) -> None:
        codes, _ = pd.factorize(target, sort=True)
        self.y = np.asarray(codes, dtype=np.int64)
        self.n_classes = int(self.y.max()) + 1
        self.folds = _folds(len(self.y), self.y)

    def score(self, series: pd.Series, kind: str) -> tuple[str, float]:
        numbers = _as_number(series, kind)
        if numbers is None:
            proba = self._mapping_proba(_groups(series))
        else:
            proba = self._tree_proba(numbers)
        return "auc", _macro_auc(self.y, proba)

    def _tree_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.y), self.n_classes))
        X = x.reshape(-1, 1)
        for train, test in self.folds:
            tree = DecisionTreeClassifier(max_depth=TREE_DEPTH, min_samples_leaf=5, random_state=0)
            tree.fit(X[train], self.y[train])
            out[np.ix_(test, tree.classes_)] = tree.predict_proba(X[test])
        return out

    def _mapping_proba(self, groups: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.y), self.n_classes))
        n_groups = int(groups.max()) + 1
        for train, test in self.folds:
            counts = np.zeros((n_groups, self.n_classes))
            np.add.at(counts, (groups[train], self.y[train]), 1.0)
            prior = np.bincount(self.y[train], minlength=self.n_classes) / len(train)
            seen = counts[groups[test]]
            out[test] = (seen + prior) / (seen.sum(axis=1, keepdims=True) + 1.0)
        return out


class _RegressionScorer:
    """Out-of-fold R2 of a one-feature model, or |Spearman|, for a numeric target."""

    def __init__(self, target: pd.Series) -> None:
        self.y = target.to_numpy(dtype=float)
        self.folds = _folds(len(self.y), None)

    def score(self, series: pd.Series, kind: str) -> tuple[str, float]:
        numbers = _as_number(series, kind)
        if numbers is None:
            return "r2", _r2(self.y, self._mapping_pred(_groups(series)))
        r2 = _r2(self.y, self._tree_pred(numbers))
        rho = _abs_spearman(numbers, self.y)
        return ("spearman", rho) if rho > r2 else ("r2", r2)

    def _tree_pred(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.y))
        X = x.reshape(-1, 1)
        for train, test in self.folds:
            tree = DecisionTreeRegressor(
                max_depth=REGRESSION_TREE_DEPTH, min_samples_leaf=5, random_state=0
            )
            out[test] = tree.fit(X[train], self.y[train]).predict(X[test])
        return out

    def _mapping_pred(self, groups: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.y))
        n_groups = int(groups.max()) + 1
        for train, test in self.folds:
            sums = np.bincount(groups[train], weights=self.y[train], minlength=n_groups)
            counts = np.bincount(groups[train], minlength=n_groups)
            prior = float(self.y[train].mean())
            out[test] = (sums[groups[test]] + prior) / (counts[groups[test]] + 1.0)
        return out


def _macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    scores = [
        roc_auc_score(y == k, proba[:, k])
        for k in range(proba.shape[1])
        if 0 < int((y == k).sum()) < len(y)
    ]
    return float(np.mean(scores)) if scores else 0.5


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0.0:
        return 0.0
    return 1.0 - float(((y - pred) ** 2).sum()) / total


def _abs_spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~np.isnan(x)
    if ok.sum() < 3:
        return 0.0
    rx = pd.Series(x[ok]).rank().to_numpy()
    ry = pd.Series(y[ok]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(abs(np.corrcoef(rx, ry)[0, 1]))


# ---------------------------------------------------------------- findings


# ---------------------------------------------------------------- associations


def _assoc_columns(frame: pd.DataFrame, columns: list[ColumnProfile]) -> list[ColumnProfile]:
    """Features and target, numeric or categorical, with two values or more."""
    keep = [
        c for c in columns
        if c.role in ("feature", "target") and c.distinct > 1 and FLAG_ID_LIKE not in c.flags
        and (c.stats is not None or c.kind in ("categorical", "boolean"))
    ]  # fmt: skip
    return keep[:ASSOC_MAX_COLUMNS]


def _codes(series: pd.Series) -> np.ndarray:
    """Level codes (top ``ASSOC_MAX_LEVELS`` levels, the rest pooled; -1 = missing)."""
    text = series.astype("string")
    top = text.value_counts().index[:ASSOC_MAX_LEVELS]
    pooled = text.where(text.isin(top) | text.isna(), "__other__")
    codes: np.ndarray = pd.Categorical(pooled).codes.astype(int)
    return codes


def cramers_v(x: np.ndarray, y: np.ndarray) -> float:
    """Bias-corrected Cramér's V of two code arrays (Bergsma 2013); rows with -1 dropped."""
    ok = (x >= 0) & (y >= 0)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2:
        return float("nan")
    table = pd.crosstab(x, y).to_numpy(dtype=float)
    r, k = table.shape
    if r < 2 or k < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    phi2 = float(((table - expected) ** 2 / expected).sum()) / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denom = min(kc - 1, rc - 1)
    return float(np.sqrt(phi2c / denom)) if denom > 0 else 0.0


def correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    """η: the share of ``values``' spread explained by the groups in ``codes`` (√ of
    between-group over total sum of squares); missing rows dropped."""
    ok = (codes >= 0) & np.isfinite(values)
    codes, values = codes[ok], values[ok]
    if len(values) < 2:
        return float("nan")
    total = float(((values - values.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    groups = pd.Series(values).groupby(codes)
    between = float((groups.count() * (groups.mean() - values.mean()) ** 2).sum())
    return float(np.sqrt(between / total))


def associations(
    frame: pd.DataFrame, columns: list[ColumnProfile]
) -> tuple[list[Association], int]:
    """Every pair of profiled columns, strongest first, and the rows measured on."""
    cols = _assoc_columns(frame, columns)
    if len(cols) < 2:
        return [], 0
    sample = frame if len(frame) <= ASSOC_SAMPLE_ROWS else frame.sample(
        ASSOC_SAMPLE_ROWS, random_state=0
    )  # fmt: skip
    numeric = {c.name: pd.to_numeric(sample[c.name], errors="coerce").to_numpy(dtype=float)
               for c in cols if c.stats is not None}  # fmt: skip
    codes = {c.name: _codes(sample[c.name]) for c in cols if c.stats is None}
    out: list[Association] = []
    names = list(numeric)
    if len(names) >= 2:
        num = pd.DataFrame(numeric)
        for measure in ("pearson", "spearman"):
            matrix = num.corr(method=measure, min_periods=3)
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    value = float(matrix.loc[a, b])
                    if np.isfinite(value):
                        out.append(Association(a, b, measure, value))
    cats = list(codes)
    for i, a in enumerate(cats):
        for b in cats[i + 1 :]:
            out.append(Association(a, b, "cramers_v", cramers_v(codes[a], codes[b])))
    for a in cats:
        for b in names:
            out.append(Association(a, b, "correlation_ratio",
                                   correlation_ratio(codes[a], numeric[b])))  # fmt: skip
    out = [x for x in out if np.isfinite(x.value)]
    out.sort(key=lambda x: -abs(x.value))
    return out, len(sample)


def missing_together(frame: pd.DataFrame, columns: list[ColumnProfile]) -> list[MissingTogether]:
    """Pairs of columns whose missing indicators correlate (phi ≥ ``MISSING_TOGETHER``)."""
    gaps = [c.name for c in columns if 0 < c.missing_share < 1][:ASSOC_MAX_COLUMNS]
    if len(gaps) < 2:
        return []
    miss = frame[gaps].isna()
    phi = miss.astype(float).corr()
    out = []
    for i, a in enumerate(gaps):
        for b in gaps[i + 1 :]:
            value = float(phi.loc[a, b])
            if np.isfinite(value) and value >= MISSING_TOGETHER:
                both = int((miss[a] & miss[b]).sum())
                either = int((miss[a] | miss[b]).sum())
                out.append(MissingTogether(a, b, both, either, value))
    out.sort(key=lambda m: -m.correlation)
    return out


def _association_warnings(prof: Profile) -> list[str]:
    out = []
    for x in prof.associations:
        if abs(x.value) < STRONG_ASSOCIATION or x.measure == "spearman":
            continue
        if prof.target in (x.a, x.b):
            continue  # a feature tied to the target is the leak check's business
        out.append(
            f"Columns '{x.a}' and '{x.b}' are almost redundant ({_measure(x.measure)} "
            f"{x.value:.3f}): a model gains little from both; consider dropping one "
            f"({DROP_HINT})."
        )
    for group in _missing_groups(prof.missing_together, [c.name for c in prof.columns]):
        names = ", ".join(f"'{g}'" for g in group)
        rows = max(m.either for m in prof.missing_together if {m.a, m.b} <= set(group))
        out.append(
            f"Columns {names} are missing together (in up to {rows} rows; missing "
            "indicators correlate ≥ "
            f"{MISSING_TOGETHER:g}): one cause, probably — check the source."
        )
    return out


def _missing_groups(pairs: list[MissingTogether], order: list[str]) -> list[list[str]]:
    """Columns linked by co-occurring gaps (connected pairs), each group in column order."""
    group: dict[str, set[str]] = {}
    for m in pairs:
        merged = group.get(m.a, {m.a}) | group.get(m.b, {m.b})
        for name in merged:
            group[name] = merged
    out: list[list[str]] = []
    for members in group.values():
        g = sorted(members, key=order.index)
        if g not in out:
            out.append(g)
    return out


def _measure(name: str) -> str:
    return {"pearson": "Pearson r", "spearman": "Spearman ρ", "cramers_v": "Cramér's V",
            "correlation_ratio": "correlation ratio η"}[name]  # fmt: skip


def _warnings(prof: Profile) -> list[str]:
    out: list[str] = []
    if prof.duplicate_rows:
        out.append(
            f"{prof.duplicate_rows} of {prof.rows} rows ({prof.duplicate_rows / prof.rows:.1%}) "
            "repeat an earlier row exactly: drop them (frame.drop_duplicates()) unless they "
            "are genuine repeats."
        )
    for col in prof.columns:
        out.extend(_column_warnings(col, prof.rows))
    out.extend(_leak_warnings(prof))
    out.extend(_association_warnings(prof))
    if prof.balance is not None:
        out.extend(_balance_warnings(prof.balance))
    return out


def _column_warnings(col: ColumnProfile, rows: int) -> list[str]:
    name = f"Column '{col.name}'"
    out: list[str] = []
    if FLAG_ALL_MISSING in col.flags:
        out.append(f"{name} is missing in all {rows} rows: drop it ({DROP_HINT}).")
    if FLAG_CONSTANT in col.flags:
        value = col.top[0].value if col.top else _num(col.stats["min"]) if col.stats else "?"
        out.append(
            f"{name} has one value ({value!r}) in every non-missing row, so it carries no "
            f"information: drop it ({DROP_HINT})."
        )
    if FLAG_DUPLICATE in col.flags:
        out.append(
            f"{name} repeats column '{col.duplicate_of}' value for value: drop one of them "
            f"({DROP_HINT})."
        )
    if FLAG_HIGH_MISSING in col.flags:
        out.append(
            f"{name} is missing in {col.missing_share:.0%} of rows: check the source, or drop "
            f"it ({DROP_HINT}) if the gaps carry no meaning."
        )
    if FLAG_ID_LIKE in col.flags:
        out.append(_id_warning(col, name, round(rows * (1 - col.missing_share))))
    if FLAG_MISSING_CODE in col.flags and col.stats:
        code = _num(col.missing_code or 0.0)
        out.append(
            f"{name} holds {code}, far from every other value ({_num(col.stats['min'])}…"
            f"{_num(col.stats['max'])} overall): it looks like a code for missing. If it is, mark "
            "it missing in this column before training, so it is not learnt as a number."
        )
    if FLAG_ZERO_INFLATED in col.flags and col.stats:
        out.append(
            f"{name} is zero in {col.stats['zeros']:.0%} of its non-missing rows "
            "(zero-inflated): a model sees two populations; if zero means 'absent' or "
            "'unknown', say so (a missing-value marker or an indicator column)."
        )
    if FLAG_HIGH_CARDINALITY in col.flags:
        out.append(
            f"{name} has {col.distinct} distinct values (over {HIGH_CARDINALITY}): rare levels "
            "will be grouped; if it is an identifier, set 'role: id' in schema.yaml."
        )
    return out


def _id_warning(col: ColumnProfile, name: str, non_missing: int) -> str:
    seen = f"{col.distinct} distinct values in {non_missing} rows"
    if col.role == "feature":
        return (
            f"{name} looks like an identifier ({seen}) but is used as a feature: set "
            "'role: id' in schema.yaml so the model cannot memorise rows."
        )
    return (
        f"{name} looks like an identifier ({seen}), so it is not used as a feature; if it "
        "is a real feature, set 'role: feature' and a kind in schema.yaml."
    )


def _leak_warnings(prof: Profile) -> list[str]:
    return [
        f"Column '{leak.column}' predicts target '{prof.target}' almost perfectly on its own "
        f"(out-of-fold {leak.metric.upper() if leak.metric != 'spearman' else '|Spearman|'} "
        f"{leak.score:.3f}): it may leak the answer. Check that it is known at prediction "
        f"time; if not, drop it ({DROP_HINT})."
        for leak in prof.leaks
    ]


def _balance_warnings(balance: TargetBalance) -> list[str]:
    out: list[str] = []
    if balance.missing:
        out.append(
            f"Target '{balance.target}' is missing in {balance.missing} rows: they are left "
            "out of training and evaluation."
        )
    if balance.classes and balance.classes[-1].share < IMBALANCE_SHARE:
        rare = balance.classes[-1]
        out.append(
            f"Target '{balance.target}' is imbalanced: class {rare.label!r} is {rare.share:.1%} "
            f"of rows ({rare.count}); prefer AUC/F1 over accuracy and check class weights."
        )
    return out


# ---------------------------------------------------------------- rich output


def _summary_table(prof: Profile) -> Table:
    table = Table(title="Summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in _summary_rows(prof):
        table.add_row(key, value)
    return table


def _summary_rows(prof: Profile) -> list[tuple[str, str]]:
    rows = [
        ("rows", f"{prof.rows:,}"),
        ("columns", str(prof.n_columns)),
        ("duplicate rows", f"{prof.duplicate_rows:,} ({prof.duplicate_rows / prof.rows:.1%})"),
        ("memory", _bytes(prof.memory_bytes)),
    ]
    if prof.target is not None:
        rows += [("target", prof.target), ("task", str(prof.task))]
    return rows


def _columns_table(prof: Profile) -> Table:
    table = Table(title="Columns")
    for header in ("column", "kind", "role", "missing", "distinct", "summary", "flags"):
        table.add_column(header, justify="right" if header in ("missing", "distinct") else "left")
    for col in prof.columns:
        table.add_row(
            col.name,
            col.kind,
            col.role,
            f"{col.missing_share:.1%}",
            f"{col.distinct:,}",
            col.summary,
            ", ".join(col.flags),
            style="red" if FLAG_LEAK in col.flags else None,
        )
    return table


def _balance_table(balance: TargetBalance) -> Table:
    table = Table(title=f"Target '{balance.target}' ({balance.task})")
    if balance.summary is not None:
        table.add_column("statistic")
        table.add_column("value", justify="right")
        for key, value in balance.summary.items():
            table.add_row(key, _num(value))
        return table
    for header in ("class", "rows", "share"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for cls in balance.classes:
        table.add_row(str(cls.label), f"{cls.count:,}", f"{cls.share:.1%}")
    return table


def _association_table(prof: Profile) -> Table:
    shown = prof.associations[:ASSOC_SHOWN]
    table = Table(
        title=f"Strongest associations ({len(shown)} of {len(prof.associations)} pairs, "
        f"{prof.association_rows:,} rows)"
    )
    for header in ("column", "column", "measure", "value"):
        table.add_column(header, justify="right" if header == "value" else "left")
    for x in shown:
        table.add_row(x.a, x.b, _measure(x.measure), f"{x.value:+.3f}")
    return table


def _missing_table(prof: Profile) -> Table:
    table = Table(title="Missing together")
    for header in ("column", "column", "both missing", "either missing", "correlation"):
        table.add_column(header, justify="left" if header == "column" else "right")
    for m in prof.missing_together[:ASSOC_SHOWN]:
        table.add_row(m.a, m.b, f"{m.both:,}", f"{m.either:,}", f"{m.correlation:.2f}")
    return table


def _leak_table(prof: Profile) -> Table:
    table = Table(title="Leakage suspects", style="red")
    for header in ("column", "metric", "score"):
        table.add_column(header)
    for leak in prof.leaks:
        table.add_row(leak.column, leak.metric, f"{leak.score:.3f}")
    return table


# ---------------------------------------------------------------- small helpers


def _num(value: float) -> str:
    """4,202 and 123,457 (never 1.235e+05) for large values; 4 significant digits below."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if 1000 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _native(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so the profile is JSON-able)."""
    return value.item() if isinstance(value, np.generic) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
