"""REST route for labels: ``POST /v1/models/{name}/feedback`` (one record or many).

Body: one record ``{"request_id": ..., "label": ...}``, a list of records, or
``{"items": [...]}``. A record names the prediction by ``request_id`` or ``entity_id``
and may carry ``ts`` (epoch seconds) and ``inputs`` (the record that was scored: checked by
the same record validator as ``/predict``). Auth, the model check (inside ``keizoku
serve``: a model the server serves, 404 otherwise) and errors come from
``keizoku.serving.boundary``, like every route: a ``predict`` key when keys are required,
checked before the body is read.

On a **forecasting** model a record is a period that came true: the model's id columns,
its time column and its target (``{"store": "north", "month": "2020-01-01", "sales":
63.2}``), joined to the forecasts logged for that series and period
(``keizoku.forecast.monitor.record_actuals``, as ``keizoku feedback`` does). All or
nothing: a missing field, an unknown series, a time off the model's frequency, a target
that is not a number or a period never forecast is a 422 naming the record, field and value.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keizoku.data.validate import check_records
from keizoku.errors import ValidationError
from keizoku.serving.boundary import (
    KeizokuRoute,
    PredictCaller,
    allow_unseen,
    errors_doc,
    json_response,
    read_json,
    served_name,
)

__all__ = ["router"]

router = APIRouter(tags=["monitoring"], route_class=KeizokuRoute)


class FeedbackRecord(BaseModel):
    """One label for an earlier prediction."""

    request_id: str | None = Field(None, description="the request_id of the prediction")
    entity_id: str | int | None = Field(None, description="or the entity id sent with it")
    label: Any = Field(description="the true outcome: one of the classes, or a number")
    ts: float | None = Field(None, description="when the outcome happened (epoch seconds)")
    inputs: dict[str, Any] | None = Field(None, description="the scored record (validated)")


_LABEL = FeedbackRecord.model_json_schema()
_ACTUAL = {
    "type": "object",
    "title": "ForecastActual",
    "description": "for a forecasting model: its id columns, time column and target, e.g. "
    '{"store": "north", "month": "2020-01-01", "sales": 63.2}',
    "additionalProperties": True,
}
_ONE = {"anyOf": [_LABEL, _ACTUAL]}
_MANY = {"type": "array", "items": _ONE}
_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        _ONE,
                        _MANY,
                        {"type": "object", "properties": {"items": _MANY}},
                    ]
                }
            }
        },
    }
}


def _records(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = body["items"]
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise ValidationError(
            "Feedback body must be a record {'request_id': ..., 'label': ...}, a list of "
            "records, or {'items': [...]}.",
            details=[{"loc": ["body"], "msg": "expected a record or a list of records"}],
        )
    return body


def _check_inputs(request: Request, name: str, records: list[dict[str, Any]]) -> None:
    """Records that carry ``inputs`` are checked like a prediction request."""
    given = [r["inputs"] for r in records if "inputs" in r]
    state = getattr(request.app.state, "keizoku", None)
    if not given or state is None:
        return
    validator = state.models.models[name].validator
    check_records(validator, given, allow_unseen=allow_unseen(request))


@router.post("/v1/models/{name}/feedback", responses=errors_doc(), openapi_extra=_DOC)
async def feedback_route(name: str, request: Request, who: PredictCaller) -> Response:
    """Store true labels for earlier predictions (for a forecasting model, the periods
    that came true); returns how many were stored."""
    from keizoku.monitoring.feedback import record_feedback

    served_name(request, name)
    records = _records(await read_json(request))
    forecast = await asyncio.to_thread(_is_forecast, request, name)
    if not forecast:
        _check_inputs(request, name, records)
    state = getattr(request.app.state, "keizoku", None)
    if state is not None and state.log is not None:  # labels for predictions just answered
        await asyncio.to_thread(state.log.flush)  # are checked against the log on disk
    actor = f"key:{who.key_name}" if who is not None else None
    if forecast:
        count = await asyncio.to_thread(_record_actuals, name, records, actor)
    else:
        count = await asyncio.to_thread(record_feedback, name, records, actor=actor)
    return json_response({"model": name, "stored": count})


def _is_forecast(request: Request, name: str) -> bool:
    """Whether the champion of ``name`` (the served one inside ``keizoku serve``) forecasts."""
    from keizoku.forecast.monitor import is_forecast

    state = getattr(request.app.state, "keizoku", None)
    if state is None:
        return is_forecast(name)
    return bool(state.models.models[name].champion.model.task == "forecast")


def _record_actuals(name: str, records: list[dict[str, Any]], actor: str | None) -> int:
    from keizoku.forecast.monitor import actual_records, record_actuals

    frame = actual_records(name, records)
    return record_actuals(name, frame, partial=False, actor=actor).stored
