"""JSON bytes → validated records → model → JSON bytes, without pandas or pydantic.

The canonical request body is one record (a JSON object) or a list of records; an
object ``{"records": [...]}`` or ``{"record": {...}}`` is accepted too. Records are
checked by the served model's ``RecordValidator`` (``keizoku.data.validate``), routed to a
variant, and scored in one vectorised call per variant (``KeizokuModel.predict_raw_records``)
into one typed ``Prediction`` per record.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from keizoku.data.labels import canonical
from keizoku.errors import UserInputError, ValidationError
from keizoku.prediction import Prediction

if TYPE_CHECKING:
    from keizoku.registry.servable import ServableModel

__all__ = [
    "MAX_RECORDS",
    "PayloadTooLarge",
    "dumps",
    "new_id",
    "parse_body",
    "records_of",
    "score",
]

MAX_RECORDS = 10_000
FRAME_AT = 256  # from this many records a DataFrame scores faster (measured 22 vs 48 µs/row)

try:  # orjson is optional: faster parsing and serialisation when installed
    import orjson as _orjson
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    _orjson = None


class PayloadTooLarge(UserInputError):
    code = "payload_too_large"
    http_status = 413


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON; send null for a missing value")


def _loads(body: bytes) -> Any:
    if _orjson is not None:
        return _orjson.loads(body)
    return json.loads(body, parse_constant=_reject_constant)


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def dumps(data: Any) -> bytes:
    """JSON bytes (orjson when installed); numpy scalars become numbers."""
    if _orjson is not None:
        out: bytes = _orjson.dumps(data, default=_default, option=_orjson.OPT_SERIALIZE_NUMPY)
        return out
    return json.dumps(data, default=_default, separators=(",", ":"), allow_nan=False).encode()


def parse_body(body: bytes) -> Any:
    """The request's JSON, or a 422 that says what is wrong with it."""
    if not body.strip():
        raise ValidationError(
            "The request body is empty. Send one record as a JSON object, or a list of records.",
            details=[{"loc": ["body"], "msg": "empty body"}],
        )
    try:
        return _loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and orjson's are ValueErrors
        raise ValidationError(
            f"The request body is not valid JSON: {str(exc)[:200]}",
            details=[{"loc": ["body"], "msg": "malformed JSON"}],
        ) from exc


def records_of(payload: Any, reserved: set[str]) -> tuple[list[Any], bool]:
    """(records, single?) from the canonical shapes; 422 for anything else."""
    if isinstance(payload, dict):
        if len(payload) == 1 and not (set(payload) & reserved):
            if "records" in payload:
                return records_of(payload["records"] if isinstance(payload["records"], list)
                                  else [payload["records"]], reserved)  # fmt: skip
            if "record" in payload:
                return [payload["record"]], True
        return [payload], True
    if isinstance(payload, list):
        if not payload:
            raise ValidationError(
                "The list of records is empty. Send at least one record.",
                details=[{"loc": ["body"], "msg": "empty list"}],
            )
        if len(payload) > MAX_RECORDS:
            raise PayloadTooLarge(
                f"{len(payload)} records in one request; the limit is {MAX_RECORDS}. Split the "
                "batch, or score files with `keizoku predict`."
            )
        return payload, False
    kind = "null" if payload is None else type(payload).__name__
    raise ValidationError(
        f"The request body is a JSON {kind}; send one record (a JSON object) or a list of them.",
        details=[{"loc": ["body"], "msg": f"expected an object or a list, got {kind}"}],
    )


def score(
    model: ServableModel,
    records: list[dict[str, Any]],
    *,
    version: int,
    variant: str,
    ids: list[str] | None = None,
    entity_key: str | None = None,
) -> list[Prediction]:
    """One ``Prediction`` per record, from one vectorised model call."""
    if model.task == "clustering":
        return _clusters(model, records, version, variant, ids, entity_key)
    try:
        raw = _raw(model, records)
    except (ValueError, OverflowError, FloatingPointError) as exc:  # input values it cannot take
        raise ValidationError(
            f"The model could not score the request: {str(exc)[:300]}",
            details=[{"loc": ["body"], "msg": "values the model cannot score"}],
        ) from exc
    labels = model.labels(raw)
    ids = ids or [new_id() for _ in records]
    entities = [r.get(entity_key) for r in records] if entity_key else [None] * len(records)
    if model.task == "regression":
        return [
            Prediction(v, None, v, version, variant, i, e)
            for v, i, e in zip(map(_finite, labels), ids, entities, strict=True)
        ]
    classes = [canonical(c) for c in (model.classes or range(raw.shape[1]))]
    binary = len(classes) == 2
    out = []
    for label, row, i, e in zip(labels, raw.tolist(), ids, entities, strict=True):
        probs = dict(zip(classes, row, strict=True))
        out.append(Prediction(label, probs, row[1] if binary else max(row), version, variant, i, e))
    return out


def _clusters(
    model: Any,
    records: list[dict[str, Any]],
    version: int,
    variant: str,
    ids: list[str] | None,
    entity_key: str | None,
) -> list[Prediction]:
    """A clustering (``keizoku.clustering.model.ClusterModel``): the cluster, each cluster's
    membership and the distance to the assigned centre (also the logged ``score``)."""
    try:
        cluster, distance, member = model.assign_records(records)
    except (ValueError, OverflowError, FloatingPointError) as exc:
        raise ValidationError(
            f"The model could not score the request: {str(exc)[:300]}",
            details=[{"loc": ["body"], "msg": "values the model cannot score"}],
        ) from exc
    ids = ids or [new_id() for _ in records]
    out = []
    for j, rec in enumerate(records):
        d = _finite(distance[j])
        probs = {str(c): float(p) for c, p in enumerate(member[j])}
        entity = rec.get(entity_key) if entity_key else None
        out.append(Prediction(int(cluster[j]), probs, d, version, variant, ids[j], entity, d))
    return out


def _raw(model: ServableModel, records: list[dict[str, Any]]) -> np.ndarray:
    """One record: the pandas-free path. Large batches: one DataFrame, vectorised encoding."""
    if len(records) < FRAME_AT:
        return model.predict_raw_records(records)
    import pandas as pd

    schema = model.schema
    names = [c.name for c in schema.features + schema.sensitive]
    return model.predict_raw(pd.DataFrame.from_records(records, columns=names))


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def new_id() -> str:
    return uuid.uuid4().hex
