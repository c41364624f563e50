"""``monitor``: drift and live performance of a model over a window of traffic or a data file."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.labels import canonical
from keizoku.errors import KeizokuError, NotFoundError
from keizoku.monitoring.drift import (
    DriftConfig,
    FeatureDrift,
    collect_counts,
    compare_categorical,
    compare_numeric,
    merge_levels,
    merge_numeric,
)
from keizoku.monitoring.log import FEATURE_PREFIX, segment_glob
from keizoku.monitoring.performance import LivePerformance, has_files, live_performance
from keizoku.monitoring.reference import Reference, load_reference
from keizoku.sections import validate_section

__all__ = ["MonitorReport", "monitor", "drift_of_source", "drift_config"]

PREDICTION = "__prediction__"


@dataclass
class MonitorReport:
    """What ``keizoku monitor`` shows."""

    model: str
    version: int
    source: str
    since: float | None
    until: float
    n_rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    performance: LivePerformance | None
    bucket_s: float
    timeline: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    config: DriftConfig = field(default_factory=DriftConfig)
    elapsed_s: float = 0.0

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        perf = None
        if self.performance is not None:
            perf = {**self.performance.__dict__, "drop": self.performance.drop}
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "since": self.since,
            "until": self.until,
            "n_rows": self.n_rows,
            "drifted": self.drifted,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "performance": perf,
            "config": self.config.model_dump(),
            "elapsed_s": self.elapsed_s,
        }


def drift_config(section: DriftConfig | Mapping[str, Any] | None) -> DriftConfig:
    """The typed ``monitoring:`` section (validated when given as a mapping)."""
    return validate_section(DriftConfig, section, "monitoring")


def _bucket_width(since: float | None, until: float) -> float:
    if since is None:
        return 86400.0
    return 3600.0 if until - since <= 3 * 86400 else 86400.0


def drift_of_source(
    con: Any,
    source: str,
    reference: Reference,
    columns: dict[str, str],
    prediction: str | None,
    cfg: DriftConfig,
) -> tuple[int, list[FeatureDrift], FeatureDrift | None, dict[str, list[tuple[float, float]]]]:
    """(rows, per-feature drift, prediction drift, PSI per bucket per feature) for ``source``."""
    counts = collect_counts(con, source, reference, columns, prediction)
    feats = dict(reference.features)
    if reference.prediction is not None and prediction is not None:
        feats[PREDICTION] = reference.prediction
    results: dict[str, FeatureDrift] = {}
    timeline: dict[str, list[tuple[float, float]]] = {}
    for name, ref in feats.items():
        if ref.kind == "numeric":
            per = counts.numeric[name]
            overall = compare_numeric(
                name, ref, merge_numeric(list(per.values()), len(ref.edges)), cfg
            )
            series = [(b, compare_numeric(name, ref, c, cfg).psi) for b, c in sorted(per.items())]
        else:
            lv = counts.categorical.get(name, {})
            overall = compare_categorical(name, ref, merge_levels(list(lv.values())), cfg)
            series = [
                (b, compare_categorical(name, ref, c, cfg).psi) for b, c in sorted(lv.items())
            ]
        results[name] = overall
        timeline[name] = series
    pred = results.pop(PREDICTION, None)
    if pred is not None:
        pred.feature = "prediction"
        timeline["prediction"] = timeline.pop(PREDICTION)
    return sum(counts.rows.values()), list(results.values()), pred, timeline


def _log_columns(con: Any, pattern: str) -> set[str]:
    cur = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pattern}', union_by_name=true)")
    return {r[0] for r in cur.fetchall()}


def monitor(
    name: str,
    *,
    version: int | None = None,
    since_s: float | None = None,
    data: str | None = None,
    config: DriftConfig | None = None,
    root: Path | None = None,
) -> MonitorReport:
    """Drift (and live metric where labels arrived) of ``name``'s champion (or ``version``)."""
    import duckdb

    from keizoku.registry.models import resolve

    started = time.perf_counter()
    cfg = config or DriftConfig()
    _, v = resolve(f"{name}:{version}" if version is not None else f"{name}@champion")
    reference = load_reference(f"{name}:{v}")
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    until = time.time()
    since = until - since_s if since_s is not None else None
    if data is not None:
        source, columns, pred, perf = _register_file(con, name, v, reference, data)
        label = f"file {data}"
        since = None
    else:
        source, columns, pred = log_source(con, name, v, reference, since, until, root)
        label = f"prediction log {Path(segment_glob(name, root)).parent}"
        perf = live_performance(name, v, reference, since=since, root=root)
        if perf.n_labels == 0:
            perf = None
    n, feats, pdrift, timeline = drift_of_source(con, source, reference, columns, pred, cfg)
    if n == 0:
        raise NotFoundError(
            f"No predictions of '{name}' in the window (since {_when(since)}). "
            "Widen it with --since (e.g. --since 7d)."
        )
    return MonitorReport(
        model=name,
        version=v,
        source=label,
        since=since,
        until=until,
        n_rows=n,
        features=feats,
        prediction=pdrift,
        performance=perf,
        bucket_s=_bucket_width(since, until) if data is None else 0.0,
        timeline=timeline,
        config=cfg,
        elapsed_s=time.perf_counter() - started,
    )


def log_source(
    con: Any,
    name: str,
    version: int,
    reference: Reference,
    since: float | None,
    until: float,
    root: Path | None = None,
) -> tuple[str, dict[str, str], str]:
    """(SELECT over the log window with a ``bucket`` column, feature columns, prediction)."""
    pattern = segment_glob(name, root)
    if not has_files(pattern):
        raise NotFoundError(
            f"No predictions are logged for model '{name}' under {Path(pattern).parent}. "
            "Serve it with `keizoku serve` (every prediction is logged), or pass --data FILE."
        )
    present = _log_columns(con, pattern)
    columns = {
        f: _quote(FEATURE_PREFIX + f) for f in reference.features if FEATURE_PREFIX + f in present
    }
    width = _bucket_width(since, until)
    window = f"ts >= {since!r} AND " if since is not None else ""
    source = (
        f"SELECT floor(ts / {width}) * {width} AS bucket, * FROM "
        f"read_parquet('{pattern}', union_by_name=true) WHERE {window}NOT shadow"
    )
    kind = reference.prediction.kind if reference.prediction else "numeric"
    pred = (
        f"CASE WHEN version = {version} THEN {'score' if kind == 'numeric' else 'prediction'} END"
    )
    return source, columns, pred


def _when(ts: float | None) -> str:
    if ts is None:
        return "the beginning"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _register_file(
    con: Any, name: str, version: int, reference: Reference, data: str
) -> tuple[str, dict[str, str], str | None, LivePerformance | None]:
    """Score a data file with the version and expose it to DuckDB as table ``current``."""
    from keizoku.data.ingest import read_table
    from keizoku.registry.models import load_model

    frame = read_table(data, None)
    model = load_model(f"{name}:{version}")
    table = pd.DataFrame({FEATURE_PREFIX + f: frame[f] for f in reference.features if f in frame})
    pred: str | None = None
    try:
        raw = model.predict_raw(frame)
    except KeizokuError:  # e.g. a column is missing: feature drift still works
        raw = None
    if raw is not None:
        if reference.task == "regression":
            table["score"] = np.asarray(raw, dtype=float)
        else:
            table["score"] = raw[:, -1] if raw.shape[1] == 2 else raw.max(axis=1)
            table["prediction"] = [canonical(x) for x in model.labels(raw)]
        pred = (
            "score"
            if reference.prediction and reference.prediction.kind == "numeric"
            else "prediction"
        )
    con.register("current_frame", table)
    columns = {f: _quote(FEATURE_PREFIX + f) for f in reference.features if f in frame}
    perf = _file_performance(frame, raw, version, reference)
    return "SELECT 0.0 AS bucket, * FROM current_frame", columns, pred, perf


def _file_performance(
    frame: pd.DataFrame, raw: np.ndarray | None, version: int, reference: Reference
) -> LivePerformance | None:
    from keizoku.training.metrics import get_metric

    if raw is None or reference.target not in frame.columns:
        return None
    y_all = frame[reference.target]
    keep = y_all.notna().to_numpy().copy()
    metric = get_metric(reference.metric, reference.task)  # type: ignore[arg-type]
    if reference.task == "regression":
        y = pd.to_numeric(y_all[keep]).to_numpy(dtype=float)
    else:
        index = {c: i for i, c in enumerate(reference.classes or [])}
        labels = y_all[keep].map(canonical)
        known = labels.isin(index).to_numpy()
        keep[np.flatnonzero(keep)[~known]] = False
        y = labels[known].map(index).to_numpy(dtype=int)
    try:
        live = metric(y, np.asarray(raw)[keep])
    except ValueError:
        live = float("nan")
    return LivePerformance(
        version, reference.metric, live, reference.cv_score, int(keep.sum()),
        reference.greater_is_better,
    )  # fmt: skip
