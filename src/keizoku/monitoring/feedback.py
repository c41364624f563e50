"""Feedback: labels that arrive after the prediction, joined to the log by id.

A feedback record names the prediction by ``request_id`` (exact) or by
``entity_id`` (then it joins the latest prediction for that entity made at or
before the feedback's time), and carries the true ``label`` and a time ``ts``.
Records are written synchronously as Parquet segments under
``home()/feedback/<model>/`` (same atomic-rename scheme as the prediction log):
when ``record_feedback`` returns, the labels are on disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from keizoku.errors import DataError, UserInputError
from keizoku.monitoring.log import log_dir, segment_glob, write_segment

__all__ = ["record_feedback", "read_feedback_file", "feedback_glob", "FEEDBACK_KIND"]

FEEDBACK_KIND = "feedback"


def feedback_glob(model: str, root: Path | None = None) -> str:
    return segment_glob(model, root, FEEDBACK_KIND)


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _clean(record: Mapping[str, Any], i: int, now: float) -> dict[str, Any]:
    rid, eid = record.get("request_id"), record.get("entity_id")
    if rid in (None, "") and eid in (None, ""):
        raise DataError(
            f"Feedback record {i} ({dict(record)!r}) has neither 'request_id' nor 'entity_id'. "
            "Give the request id returned with the prediction, or the entity id sent with it."
        )
    if "label" not in record or record["label"] is None or _is_nan(record["label"]):
        raise DataError(
            f"Feedback record {i} ({dict(record)!r}) has no 'label'. Add the true outcome "
            "as 'label'."
        )
    ts = record.get("ts")
    return {
        "request_id": None if rid in (None, "") else str(rid),
        "entity_id": None if eid in (None, "") else str(eid),
        "label": _label_text(record["label"]),
        "label_num": _number(record["label"]),
        "ts": float(ts) if ts is not None else now,
        "received_ts": now,
    }


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def record_feedback(
    model: str, records: Iterable[Mapping[str, Any]], *, root: Path | None = None
) -> int:
    """Validate and durably store feedback records for ``model``; returns how many."""
    now = time.time()
    rows = [_clean(r, i, now) for i, r in enumerate(records)]
    if not rows:
        return 0
    table = pa.table(
        {
            "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
            "entity_id": pa.array([r["entity_id"] for r in rows], pa.string()),
            "label": pa.array([r["label"] for r in rows], pa.string()),
            "label_num": pa.array([r["label_num"] for r in rows], pa.float64()),
            "ts": pa.array([r["ts"] for r in rows], pa.float64()),
            "received_ts": pa.array([r["received_ts"] for r in rows], pa.float64()),
        }
    )
    write_segment(log_dir(model, root, FEEDBACK_KIND), table, prefix="fb")
    return len(rows)


def read_feedback_file(path: str | Path) -> list[dict[str, Any]]:
    """Feedback records from a CSV, Parquet, JSON or JSONL file.

    Columns: ``request_id`` and/or ``entity_id``, ``label``, optional ``ts``
    (epoch seconds or an ISO time).
    """
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"Feedback file '{p}' does not exist.")
    suffix = "".join(p.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        frame = pd.read_parquet(p)
    elif suffix.endswith(".jsonl") or suffix.endswith(".ndjson"):
        frame = pd.read_json(p, lines=True, dtype=False)
    elif suffix.endswith(".json"):
        data = json.loads(p.read_text())
        frame = pd.DataFrame(data if isinstance(data, list) else data.get("items", [data]))
    else:
        frame = pd.read_csv(p, dtype={"request_id": str, "entity_id": str})
    if "label" not in frame.columns:
        raise UserInputError(
            f"Feedback file '{p}' has no 'label' column (columns: {list(frame.columns)}). "
            "Name the true-outcome column 'label'."
        )
    if "ts" in frame.columns and not pd.api.types.is_numeric_dtype(frame["ts"]):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("int64") / 1e9
    keep = [c for c in ("request_id", "entity_id", "label", "ts") if c in frame.columns]
    out = frame[keep].astype(object).where(frame[keep].notna(), None)
    return out.to_dict(orient="records")
