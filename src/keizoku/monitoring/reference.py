"""Reference statistics: per-feature sketches computed once, at training.

Saved with every model version as ``reference.json`` (built by
``reference_artifact`` from the training context). Drift compares new data with
these sketches and never re-reads the
training data:

* numbers: ``edges`` (the 1/B … (B-1)/B quantiles, de-duplicated) and the
  training CDF at each edge (``cdf``), the null rate, mean, std, min, max;
* categories (and booleans): the relative frequency of the ``MAX_LEVELS`` most
  frequent levels, the share of all other levels (``other``), the null rate;
* the prediction distribution, from the out-of-fold predictions of the search
  (the probability of the positive class for a binary model, the predicted class
  for a multiclass model, the value for a regression);
* the metric and its cross-validated score, the task and the class labels;
* for a classifier, the calibration of its out-of-fold probabilities (isotonic knots and
  the expected calibration error) for confidence-based performance estimation
  (:mod:`keizoku.monitoring.estimate`).

Beside it, ``reference_sample.parquet``: at most ``SAMPLE_ROWS`` training rows
(features only, a seeded random sample) for the multivariate check
(:mod:`keizoku.monitoring.multivariate`); the registry hashes it like every artifact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from keizoku.data.labels import canonical, canonical_counts, canonical_texts
from keizoku.errors import NotFoundError
from keizoku.monitoring.estimate import Calibration, fit_calibration

if TYPE_CHECKING:
    from keizoku.training.context import TrainingContext

__all__ = [
    "FeatureRef",
    "Reference",
    "build_reference",
    "reference_artifact",
    "load_reference",
    "load_reference_sample",
    "reference_sample",
    "numeric_ref",
    "categorical_ref",
    "BINS",
    "MAX_LEVELS",
    "OTHER",
]

BINS = 20
MAX_LEVELS = 50
OTHER = "__other__"
REFERENCE_FILE = "reference.json"
SAMPLE_FILE = "reference_sample.parquet"
SAMPLE_ROWS = 5000


class FeatureRef(BaseModel):
    """One column's sketch."""

    kind: str  # "numeric" | "categorical"
    n: int
    null_rate: float
    edges: list[float] = Field(default_factory=list)
    cdf: list[float] = Field(default_factory=list)
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    below: float | None = None  # numbers: mean of max(first edge − x, 0) (None: older sketch)
    above: float | None = None  # numbers: mean of max(x − last edge, 0)
    frequencies: dict[str, float] = Field(default_factory=dict)
    other: float = 0.0

    def bin_probs(self) -> np.ndarray:
        """Numbers: share of non-null values per bin (B bins for B-1 edges)."""
        cdf = np.asarray(self.cdf, dtype=float)
        return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


class Reference(BaseModel):
    """Everything drift and performance monitoring need from training."""

    version: int = 1
    created: float
    n_rows: int
    task: str
    target: str
    classes: list[str] | None = None
    metric: str
    greater_is_better: bool
    cv_score: float
    features: dict[str, FeatureRef]
    prediction: FeatureRef | None = None
    calibration: Calibration | None = None  # classifiers (None: regression, older sketch)
    # clustering: each training row's distance to its cluster's centre (the logged score)
    distance: FeatureRef | None = None


"""Deprecated alias of :func:`keizoku.data.labels.canonical` (kept for older callers)."""


def numeric_ref(values: pd.Series | np.ndarray, bins: int = BINS) -> FeatureRef:
    """Quantile-bin sketch of a numeric column."""
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    n = len(arr)
    ok = arr[~np.isnan(arr)]
    null_rate = float(1 - len(ok) / n) if n else 0.0
    if len(ok) == 0:
        return FeatureRef(kind="numeric", n=n, null_rate=null_rate)
    qs = np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(qs)
    cdf = np.searchsorted(np.sort(ok), edges, side="right") / len(ok)
    below, above = (float(np.maximum(edges[0] - ok, 0).mean()),
                    float(np.maximum(ok - edges[-1], 0).mean()))  # fmt: skip
    return FeatureRef(
        kind="numeric",
        n=n,
        null_rate=null_rate,
        edges=[float(e) for e in edges],
        cdf=[float(c) for c in cdf],
        mean=float(ok.mean()),
        std=float(ok.std()),
        min=float(ok.min()),
        max=float(ok.max()),
        below=below,
        above=above,
    )


def categorical_ref(values: pd.Series | np.ndarray, max_levels: int = MAX_LEVELS) -> FeatureRef:
    """Level-frequency sketch of a categorical column (levels as text)."""
    series = pd.Series(values)
    n = len(series)
    counts = canonical_counts(series)  # the most frequent first
    present = sum(counts.values())
    null_rate = float(1 - present / n) if n else 0.0
    total = max(present, 1)
    levels = list(counts.items())
    return FeatureRef(
        kind="categorical",
        n=n,
        null_rate=null_rate,
        frequencies={str(k): float(v / total) for k, v in levels[:max_levels]},
        other=float(sum(v for _, v in levels[max_levels:]) / total)
        if len(levels) > max_levels
        else 0.0,
    )


def _prediction_ref(oof: np.ndarray | None, task: str, classes: list[str] | None) -> FeatureRef:
    if oof is None:
        return FeatureRef(kind="numeric", n=0, null_rate=0.0)
    arr = np.asarray(oof, dtype=float)
    if task == "regression":
        return numeric_ref(arr.ravel())
    if arr.ndim == 1:
        return numeric_ref(arr)
    if arr.shape[1] == 2:
        return numeric_ref(arr[:, 1])
    labels = classes or [str(i) for i in range(arr.shape[1])]
    return categorical_ref(np.asarray(labels, dtype=object)[arr.argmax(axis=1)])


def build_reference(
    frame: pd.DataFrame,
    schema: Any,
    *,
    oof: np.ndarray | None,
    metric: str,
    greater_is_better: bool,
    cv_score: float,
    oof_y: np.ndarray | None = None,
) -> Reference:
    """Sketch every feature of ``frame``, the out-of-fold prediction distribution and (given
    the encoded labels ``oof_y`` of the out-of-fold rows) the calibration of a classifier."""
    features: dict[str, FeatureRef] = {}
    for col in schema.features:
        if col.name not in frame.columns:
            continue
        if col.kind == "numeric":
            features[col.name] = numeric_ref(frame[col.name])
        elif col.kind in ("categorical", "boolean"):
            features[col.name] = categorical_ref(frame[col.name])
    classes = [canonical(c) for c in schema.classes] if schema.classes else None
    return Reference(
        created=time.time(),
        n_rows=len(frame),
        task=str(schema.task),
        target=str(schema.target),
        classes=classes,
        metric=metric,
        greater_is_better=greater_is_better,
        cv_score=float(cv_score),
        features=features,
        prediction=_prediction_ref(oof, str(schema.task), classes),
        calibration=fit_calibration(oof, oof_y, str(schema.task)),
    )


def reference_artifact(ctx: TrainingContext, folder: Path) -> dict[str, Path]:
    """Artifact builder: write ``reference.json`` (all rows with a target) into ``folder``."""
    result = ctx.result
    ref = build_reference(
        ctx.data.frame,
        ctx.schema,
        oof=ctx.oof,  # a partial search's OOF covers fewer rows: still a fair sample
        metric=result.metric.name,
        greater_is_better=bool(result.metric.greater_is_better),
        cv_score=float(result.cv_score),
        oof_y=ctx.oof_y,
    )
    path = Path(folder) / REFERENCE_FILE
    path.write_text(ref.model_dump_json(indent=1))
    sample = Path(folder) / SAMPLE_FILE
    reference_sample(ctx.data.frame, list(ref.features)).to_parquet(sample, index=False)
    return {"reference": path, "reference_sample": sample}


def reference_sample(
    frame: pd.DataFrame, features: list[str], rows: int = SAMPLE_ROWS
) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``'s ``features`` (seeded, so a retrain is reproducible)."""
    cols = [c for c in features if c in frame.columns]
    if len(frame) > rows:
        frame = frame.sample(rows, random_state=0)
    out = frame[cols].reset_index(drop=True)
    for c in cols:  # mixed object columns do not write to Parquet: categories as text
        if out[c].dtype == object:
            out[c] = canonical_texts(out[c]).astype("string")
    return out


def load_reference_sample(ref: str) -> pd.DataFrame | None:
    """The training row sample of ``ref`` (None for a version trained before it was kept)."""
    from keizoku.registry.models import version_artifact

    try:
        path = version_artifact(ref, SAMPLE_FILE)
    except NotFoundError:
        return None
    return pd.read_parquet(path)


def load_reference(ref: str) -> Reference:
    """The reference statistics saved with model version ``ref`` (``NAME[@alias|:v]``)."""
    from keizoku.registry.models import get_version, version_artifact
    from keizoku.registry.refs import parse_ref

    try:
        path = version_artifact(ref, REFERENCE_FILE)
    except NotFoundError as exc:
        if get_version(ref).tags.get("keizoku.task") == "forecast":
            name = parse_ref(ref).name
            raise NotFoundError(
                f"Version '{ref}' is a forecasting model: it is monitored by its forecast "
                f"error, not by feature drift. Run `keizoku forecast-error {name} ACTUALS` "
                "(docs/forecasting.md)."
            ) from exc
        raise NotFoundError(
            f"Version '{ref}' has no reference statistics ({REFERENCE_FILE}): it was trained "
            "before monitoring existed. Retrain it with `keizoku train` to monitor it."
        ) from exc
    return Reference.model_validate(json.loads(path.read_text()))
