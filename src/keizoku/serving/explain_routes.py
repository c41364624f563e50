"""REST route: ``POST /v1/models/{name}/explain`` → the top contributions for one record.

``name`` is ``NAME``, ``NAME@alias`` or ``NAME:version`` (default alias: champion).
Body: ``{"row": {"Age": 22, ...}, "top": 10}``. Response: the prediction, the space
the contributions are in, ``expected_value``, ``output`` (= expected_value + the sum of
all contributions), the ``top`` contributions and ``rest`` (the sum of the others).

Auth: inside ``keizoku serve`` the server's guard decides (keys required when keys
are configured or the server is not on loopback); mounted elsewhere, a ``predict``
key is required whenever keys are configured (``Authorization: Bearer`` or
``X-API-Key``). Errors are JSON ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from keizoku.errors import KeizokuError, NotFoundError

__all__ = ["router", "ExplainRequest", "explain_ref"]

router = APIRouter(tags=["explanations"])
_lock = threading.Lock()
_backgrounds: dict[tuple[str, int], pd.DataFrame] = {}


class ExplainRequest(BaseModel):
    row: dict[str, Any] = Field(description="One record: column → value, as for predictions.")
    top: int = Field(default=10, ge=1, le=200, description="How many contributions to return.")


def _token(request: Request) -> str | None:
    from keizoku.auth import token_from_headers

    return token_from_headers(request.headers)


def _authorize(request: Request) -> None:
    state = getattr(request.app.state, "keizoku", None)
    guard = getattr(state, "guard", None)
    if guard is not None:
        guard.principal(request, "predict")
        return
    from keizoku.auth import authenticate, keys_configured, require_role

    if keys_configured():
        require_role(authenticate(_token(request)), "predict")


def _background(name: str, version: int) -> pd.DataFrame | None:
    from keizoku.registry.store import version_artifact

    key = (name, version)
    with _lock:
        if key in _backgrounds:
            return _backgrounds[key]
    try:
        path = version_artifact(f"{name}:{version}", "background.json")
    except NotFoundError:
        return None
    frame = pd.DataFrame(json.loads(path.read_text()))
    with _lock:
        _backgrounds[key] = frame
    return frame


def explain_ref(ref: str, row: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """Explain one record with the registered model ``ref`` (library entry point)."""
    from keizoku.evaluation.explain import explain_row
    from keizoku.registry.refs import parse_ref
    from keizoku.registry.store import load_model, resolve

    name, version = resolve(parse_ref(ref))
    model = load_model(f"{name}:{version}")
    result = explain_row(model, row, _background(name, version), top=top)
    return {"model": name, "version": version, **result}


@router.post("/v1/models/{name}/explain")
def explain_route(name: str, body: ExplainRequest, request: Request) -> JSONResponse:
    """The top feature contributions to one prediction (they add up to ``output``)."""
    try:
        _authorize(request)
        return JSONResponse(explain_ref(name, body.row, body.top))
    except KeizokuError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)
