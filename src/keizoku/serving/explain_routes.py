"""REST route: ``POST /v1/models/{name}/explain`` → the top contributions for one record.

``name`` is ``NAME``, ``NAME@alias`` or ``NAME:version`` (default alias: champion); inside
``keizoku serve`` ``NAME`` must be a model the server serves (404 otherwise, as for
predict). Body: ``{"row": {"Age": 22, ...}, "top": 10}``; the row goes through the same
record validator as ``/predict`` (``?allow_unseen=true`` scores unseen categories and
missing fields, with a warning). Response: the prediction, the space the contributions are
in, ``expected_value``, ``output`` (= expected_value + the sum of all contributions), the
``top`` contributions and ``rest`` (the sum of the others).

Auth and errors: ``keizoku.serving.boundary`` (a ``predict`` key when keys are required,
checked before the body is read; errors in keizoku's JSON format).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from starlette.responses import Response

from keizoku.errors import IntegrityError, NotFoundError
from keizoku.serving.boundary import (
    KeizokuRoute,
    PredictCaller,
    allow_unseen,
    body_doc,
    errors_doc,
    json_response,
    model_part,
    parse_model,
    served_name,
)
from keizoku.serving.schemas import ExplainRequest

__all__ = ["router", "ExplainRequest", "explain_ref"]

router = APIRouter(tags=["explanations"], route_class=KeizokuRoute)
_lock = threading.Lock()
_backgrounds: dict[tuple[str, int], pd.DataFrame] = {}


def _background(name: str, version: int) -> pd.DataFrame | None:
    from keizoku.registry.models import version_artifact

    key = (name, version)
    with _lock:
        if key in _backgrounds:
            return _backgrounds[key]
    try:
        path = version_artifact(f"{name}:{version}", "background.json")
    except NotFoundError:
        return None
    try:
        frame = pd.DataFrame(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:  # a damaged artifact: say which, never a 500
        raise IntegrityError(
            f"The background sample of {name}:{version} ({path}) cannot be read: "
            f"{str(exc)[:200]}. Retrain the model (`keizoku train`) to write it again."
        ) from exc
    with _lock:
        _backgrounds[key] = frame
    return frame


def explain_ref(
    ref: str, row: dict[str, Any], top: int = 10, *, allow_unseen: bool = False
) -> dict[str, Any]:
    """Explain one record with the registered model ``ref`` (library entry point)."""
    from keizoku.evaluation.explain import explain_row
    from keizoku.registry.models import load_model, resolve
    from keizoku.registry.refs import parse_ref

    name, version = resolve(parse_ref(ref))
    model = load_model(f"{name}:{version}")
    result = explain_row(model, row, _background(name, version), top=top, allow_unseen=allow_unseen)
    return {"model": name, "version": version, **result}


@router.post(
    "/v1/models/{name}/explain", responses=errors_doc(), openapi_extra=body_doc(ExplainRequest)
)
async def explain_route(name: str, request: Request, who: PredictCaller) -> Response:
    """The top feature contributions to one prediction (they add up to ``output``)."""
    served_name(request, model_part(name))
    body = await parse_model(request, ExplainRequest)
    result = await asyncio.to_thread(
        explain_ref, name, body.row, body.top, allow_unseen=allow_unseen(request)
    )
    return json_response(result)
