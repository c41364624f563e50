"""REST route for labels: ``POST /v1/models/{name}/feedback`` (one record or many).

Body: one record ``{"request_id": ..., "label": ...}``, a list of records, or
``{"items": [...]}``. A record names the prediction by ``request_id`` or
``entity_id`` and may carry ``ts`` (epoch seconds). Needs an API key with role
``predict`` (or ``admin``) once any key exists, like the prediction routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from keizoku.errors import KeizokuError, ValidationError

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


def _token(request: Request) -> str | None:
    from keizoku.auth import token_from_headers

    return token_from_headers(request.headers)


def _check_caller(request: Request) -> None:
    from keizoku.auth import authenticate, keys_configured, require_role

    if keys_configured():
        require_role(authenticate(_token(request)), "predict")


def _error(exc: KeizokuError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


def _records(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = body["items"]
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise ValidationError(
            "Feedback body must be a record {'request_id': ..., 'label': ...}, a list of "
            "records, or {'items': [...]}."
        )
    return body


@router.post("/v1/models/{name}/feedback")
def feedback_route(name: str, request: Request, body: Any = Body(...)) -> JSONResponse:
    """Store true labels for earlier predictions; returns how many were stored."""
    from keizoku.monitoring.feedback import record_feedback

    try:
        _check_caller(request)
        count = record_feedback(name, _records(body))
    except KeizokuError as exc:
        return _error(exc)
    return JSONResponse({"model": name, "stored": count})
