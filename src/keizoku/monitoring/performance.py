"""Live performance: the prediction log joined with feedback, scored with the training metric.

A label joins its prediction by ``request_id``; a label given by ``entity_id``
joins the latest non-shadow prediction for that entity made at or before the
label's ``ts`` (a DuckDB ASOF join), then every row logged for that request
(the primary and any shadow predictions). When a request has several labels,
the latest received wins.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.monitoring.feedback import feedback_glob
from keizoku.monitoring.log import live_files, log_scan, segment_glob

__all__ = ["labelled_rows", "metric_on_rows", "LivePerformance", "live_performance", "has_files"]


def has_files(pattern: str) -> bool:
    """Whether the folder a ``segment_glob`` names holds a file to read."""
    return bool(live_files(Path(pattern).parent))


def _parquet(pattern: str) -> str:
    return log_scan(pattern)


def labelled_rows(
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    columns: str = "p.request_id, p.ts, p.version, p.variant, p.shadow, p.entity_id, "
    "p.prediction, p.score, p.probabilities, p.latency_ms",
    root: Path | None = None,
    con: Any = None,
) -> pd.DataFrame:
    """Logged predictions that have a label (columns + ``label``, ``label_num``)."""
    from keizoku.monitoring.duck import duckdb_cursor

    pglob, fglob = segment_glob(model, root), feedback_glob(model, root)
    empty = pd.DataFrame(
        columns=[c.split(".")[-1].strip() for c in columns.split(",")] + ["label", "label_num"]
    )
    if not has_files(pglob) or not has_files(fglob):
        return empty
    where = []
    if since is not None:
        where.append(f"ts >= {float(since)!r}")
    if until is not None:
        where.append(f"ts < {float(until)!r}")
    cond = ("WHERE " + " AND ".join(where)) if where else ""
    sql = f"""
    WITH p AS (SELECT * FROM {_parquet(pglob)} {cond}),
    f AS (SELECT * FROM {_parquet(fglob)}),
    by_entity AS (
        SELECT pp.request_id, fe.label, fe.label_num, fe.received_ts
        FROM (SELECT * FROM f WHERE request_id IS NULL AND entity_id IS NOT NULL) fe
        ASOF JOIN (SELECT entity_id, ts, request_id FROM p WHERE NOT shadow) pp
        ON fe.entity_id = pp.entity_id AND fe.ts >= pp.ts
    ),
    direct AS (
        SELECT request_id, label, label_num, received_ts + 1e9 AS received_ts
        FROM f WHERE request_id IS NOT NULL
    ),
    labels AS (
        SELECT request_id, arg_max(label, received_ts) AS label,
               arg_max(label_num, received_ts) AS label_num
        FROM (SELECT * FROM direct UNION ALL SELECT * FROM by_entity) GROUP BY request_id
    )
    SELECT {columns}, l.label, l.label_num FROM p JOIN labels l USING (request_id)
    ORDER BY p.ts
    """
    with nullcontext(con) if con is not None else duckdb_cursor() as cursor:
        return cursor.execute(sql).df()


def _proba_matrix(rows: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Class probabilities from the log's typed ``probabilities`` column (JSON text)."""
    out = []
    for text, pred in zip(rows["probabilities"], rows["prediction"], strict=True):
        probs = json.loads(text) if isinstance(text, str) else None
        if isinstance(probs, dict):
            out.append([float(probs.get(c, 0.0)) for c in classes])
        else:  # a segment written before the column existed: the predicted class only
            out.append([1.0 if str(pred) == c else 0.0 for c in classes])
    return np.asarray(out, dtype=float)


def metric_on_rows(
    rows: pd.DataFrame, metric_name: str, task: str, classes: list[str] | None
) -> float:
    """The metric of logged predictions against their labels (NaN when it cannot be computed)."""
    if rows.empty:
        return float("nan")
    from keizoku.training.metrics import get_metric  # scikit-learn: only with labels

    metric = get_metric(metric_name, task)  # type: ignore[arg-type]
    try:
        if task == "regression":
            y = rows["label_num"].to_numpy(dtype=float)
            pred = rows["score"].to_numpy(dtype=float)
            return metric(y, pred)
        cls = list(classes or sorted(rows["label"].unique()))
        index = {c: i for i, c in enumerate(cls)}
        keep = rows["label"].isin(index)
        rows = rows[keep]
        y = rows["label"].map(index).to_numpy(dtype=int)
        if task == "binary" and rows["score"].notna().all():
            s = rows["score"].to_numpy(dtype=float)
            return metric(y, np.column_stack([1 - s, s]))
        return metric(y, _proba_matrix(rows, cls))
    except ValueError:
        return float("nan")


@dataclass
class LivePerformance:
    version: int
    metric: str
    live: float
    training: float
    n_labels: int
    greater_is_better: bool

    @property
    def drop(self) -> float:
        """How much worse live is than training (positive = worse), in metric units."""
        if self.live != self.live:
            return float("nan")
        diff = self.training - self.live
        return diff if self.greater_is_better else -diff


def live_performance(
    model: str,
    version: int,
    reference: Any,
    *,
    since: float | None = None,
    root: Path | None = None,
) -> LivePerformance:
    rows = labelled_rows(model, since=since, root=root)
    rows = rows[rows["version"] == version] if not rows.empty else rows
    live = metric_on_rows(rows, reference.metric, reference.task, reference.classes)
    return LivePerformance(
        version, reference.metric, live, reference.cv_score, len(rows), reference.greater_is_better
    )
