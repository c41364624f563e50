"""Feedback: labels that arrive after the prediction, joined to the log by id.

A feedback record names the prediction by ``request_id`` (exact) or by
``entity_id`` (then it joins the latest prediction for that entity made at or
before the feedback's time), and carries the true ``label`` and a time ``ts``.
Records are written synchronously as Parquet segments under
``home()/feedback/<model>/`` (same atomic-rename scheme as the prediction log):
when ``record_feedback`` returns, the labels are on disk.

Validation comes first (``check_feedback``): a valid name of a registered model, a
request id that is in the prediction log (or an entity id that was logged), and a label
among the model's classes (a number for regression). Labels are stored in the canonical
form of ``keizoku.data.labels`` — the same form the prediction log uses — so ``True``,
``"true"`` and ``1.0``/``1`` meet. Nothing is written for a model that does not exist,
and never outside its folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from keizoku.data.labels import LabelCodec, as_number
from keizoku.errors import DataError, UserInputError
from keizoku.monitoring.log import log_dir, log_scan, segment_glob, write_segment
from keizoku.names import check_name

__all__ = [
    "FEEDBACK_KIND",
    "FeedbackReport",
    "Rejection",
    "check_feedback",
    "feedback_glob",
    "read_feedback_file",
    "record_feedback",
    "store_feedback",
]

FEEDBACK_KIND = "feedback"


def feedback_glob(model: str, root: Path | None = None) -> str:
    return segment_glob(model, root, FEEDBACK_KIND)


@dataclass(frozen=True)
class Rejection:
    """One feedback record that was not stored, and why."""

    record: int  # 1-based position in the batch
    request_id: str | None
    entity_id: str | None
    label: Any
    reason: str


@dataclass
class FeedbackReport:
    """What a batch did: how many labels were stored, which records were rejected."""

    model: str
    stored: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stored": self.stored,
            "rejected": [r.__dict__ for r in self.rejected],
        }


def _label_num(text: str) -> float | None:
    """A class label as a number where it is one (``"1"``, ``"true"``), for mean outcomes."""
    return {"true": 1.0, "false": 0.0}.get(text, as_number(text))


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def _codec(model: str) -> LabelCodec:
    from keizoku.monitoring.reference import load_reference

    ref = load_reference(f"{model}@champion")
    return LabelCodec(None if ref.task == "regression" else list(ref.classes or []))


def _known(model: str, root: Path | None, column: str, values: set[str]) -> set[str]:
    """Which of ``values`` appear in ``column`` of the model's prediction log."""
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.performance import has_files

    pattern = segment_glob(model, root)
    if not values or not has_files(pattern):
        return set()
    sql = f"SELECT DISTINCT {column} FROM {log_scan(pattern)} WHERE list_contains(?, {column})"
    with duckdb_cursor() as con:
        return {str(r[0]) for r in con.execute(sql, [sorted(values)]).fetchall()}


def check_feedback(
    model: str, records: Iterable[Mapping[str, Any]], *, root: Path | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Split ``records`` into storable rows and rejections (nothing is written here).

    The model name must be valid and the model registered; a record needs a
    ``request_id`` that is in the prediction log, or an ``entity_id`` that was logged,
    and a ``label`` that is one of the model's classes (a number for regression), in
    any spelling ``keizoku.data.labels.canonical`` accepts.
    """
    from keizoku.registry.models import list_versions

    check_name(model)
    list_versions(model)  # NotFoundError (with a "did you mean") for an unknown model
    codec = _codec(model)
    now = time.time()
    items = [dict(r) for r in records]
    rids = {str(r["request_id"]) for r in items if not _is_missing(r.get("request_id"))}
    eids = {str(r["entity_id"]) for r in items if not _is_missing(r.get("entity_id"))}
    known_rids = _known(model, root, "request_id", rids)
    known_eids = _known(model, root, "entity_id", eids)
    rows, rejected = [], []
    for i, record in enumerate(items, 1):
        rid = None if _is_missing(record.get("request_id")) else str(record["request_id"])
        eid = None if _is_missing(record.get("entity_id")) else str(record["entity_id"])
        label = record.get("label")
        reason = _problem(record, rid, eid, label, codec, known_rids, known_eids)
        if reason:
            rejected.append(Rejection(i, rid, eid, label, reason))
            continue
        ts = record.get("ts")
        rows.append({
            "request_id": rid, "entity_id": None if rid else eid,
            "label": codec.text(label),
            "label_num": as_number(label) if codec.is_regression else _label_num(codec.text(label)),
            "ts": as_number(ts) or now, "received_ts": now,
        })  # fmt: skip
    return rows, rejected


def _problem(
    record: Mapping[str, Any],
    rid: str | None,
    eid: str | None,
    label: Any,
    codec: LabelCodec,
    known_rids: set[str],
    known_eids: set[str],
) -> str:
    if rid is None and eid is None:
        return (
            "has neither 'request_id' nor 'entity_id': give the request id returned with the "
            "prediction, or the entity id sent with it"
        )
    if _is_missing(label):
        return "has no 'label': add the true outcome as 'label'"
    if not codec.known(label):
        if codec.is_regression:
            return f"label {label!r} is not a number: this model does regression"
        shown = ", ".join(repr(c) for c in (codec.classes or [])[:20])
        return f"label {label!r} is not one of the model's classes ({shown})"
    if rid is not None and rid not in known_rids:
        return (
            f"request_id {rid!r} is not in the prediction log: send the request_id returned "
            "with the prediction (a prediction made this second reaches the log at the "
            "server's next flush)"
        )
    if rid is None and eid not in known_eids:
        return (
            f"entity_id {eid!r} was never logged with a prediction: send the entity id the "
            "prediction request carried (deployment entity_key)"
        )
    return ""


def store_feedback(
    model: str,
    records: Iterable[Mapping[str, Any]],
    *,
    partial: bool = False,
    actor: str | None = None,
    root: Path | None = None,
) -> FeedbackReport:
    """Validate and durably store feedback; audited as one ``feedback`` entry.

    ``partial=False`` (REST): any rejected record raises DataError naming it and nothing
    is stored. ``partial=True`` (CLI): valid records are stored, rejections reported.
    """
    rows, rejected = check_feedback(model, records, root=root)
    report = FeedbackReport(model, 0, rejected)
    if rejected and not partial:
        first = rejected[0]
        raise DataError(
            f"Feedback record {first.record} for '{model}' {first.reason}. "
            f"{len(rejected)} of {len(rows) + len(rejected)} record(s) rejected; nothing "
            "was stored.",
            details={"rejected": [r.__dict__ for r in rejected[:100]]},
        )
    if rows:
        _write(model, rows, root)
        report.stored = len(rows)
        from keizoku import audit

        audit.record(
            model, "feedback", actor=actor,
            reason=f"{report.stored} label(s) stored, {len(rejected)} rejected",
            evidence={"stored": report.stored, "rejected": len(rejected),
                      "reasons": sorted({r.reason for r in rejected})[:10]},
        )  # fmt: skip
    return report


def _write(model: str, rows: list[dict[str, Any]], root: Path | None) -> None:
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


def record_feedback(
    model: str,
    records: Iterable[Mapping[str, Any]],
    *,
    actor: str | None = None,
    root: Path | None = None,
) -> int:
    """Validate and store feedback, all or nothing (DataError names the first bad record)."""
    return store_feedback(model, records, partial=False, actor=actor, root=root).stored


def read_feedback_file(path: str | Path) -> list[dict[str, Any]]:
    """Feedback records from a CSV, Parquet, JSON or JSONL file.

    Columns: ``request_id`` and/or ``entity_id``, ``label``, optional ``ts``
    (epoch seconds or an ISO time).
    """
    import pandas as pd  # here only: the log's compaction and folding read no file

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
    records: list[dict[str, Any]] = out.to_dict(orient="records")
    return records
