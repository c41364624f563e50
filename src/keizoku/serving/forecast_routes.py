"""REST route: ``POST /v1/models/{name}/forecast`` → the next horizon of each series.

``name`` is ``NAME``, ``NAME@alias`` or ``NAME:version`` (default: the champion); inside
``keizoku serve`` ``NAME`` must be a model the server serves. Body::

    {"history": [{"date": "2015-01-01", "unemploy": 8903}, ...],   # recent periods
     "future":  [{"date": "2015-05-01", "price": 1.2}, ...],       # exogenous columns only
     "horizon": 6}                                                  # default: the model's

The history goes through the same series checks as training (``keizoku.forecast.series``:
duplicate timestamps, gaps, missing values, a history shorter than the horizon), each a
422 naming the row. Response: ``model``, ``version``, ``level`` and one object per series
and step (``step``, the time column, the id columns, ``forecast``, ``lower``, ``upper``,
the exogenous values, ``request_id``). Each step is written to the prediction log (inputs:
ids, time, step, lower, upper, the exogenous values), so ``keizoku feedback NAME ACTUALS``
can attach the value that came true to it (``keizoku.forecast.monitor.record_actuals``).

Auth, body limit and errors: ``keizoku.serving.boundary``, as for ``/predict``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from keizoku.errors import UserInputError
from keizoku.prediction import Prediction
from keizoku.serving.boundary import (
    KeizokuRoute,
    PredictCaller,
    body_doc,
    errors_doc,
    json_response,
    model_part,
    parse_model,
    served_name,
)

__all__ = ["ForecastRequest", "forecast_ref", "router"]

router = APIRouter(tags=["forecasting"], route_class=KeizokuRoute)


class ForecastRequest(BaseModel):
    """The recent history of one or more series, and the future exogenous values."""

    model_config = ConfigDict(extra="forbid")
    history: list[dict[str, Any]] = Field(min_length=1, max_length=1_000_000)
    future: list[dict[str, Any]] = Field(default_factory=list)
    horizon: int | None = Field(default=None, ge=1)


def forecast_ref(ref: str, body: ForecastRequest) -> tuple[str, int, Any, pd.DataFrame]:
    """(name, version, model, forecast frame) for ``body`` with model ``ref``."""
    from keizoku.registry.models import load_model, resolve
    from keizoku.registry.refs import parse_ref

    name, version = resolve(parse_ref(ref))
    model = load_model(f"{name}:{version}")
    if model.task != "forecast":
        raise UserInputError(
            f"{name}:{version} is a {model.task} model, not a forecasting one: use "
            f"POST /v1/models/{name}/predict."
        )
    future = pd.DataFrame(body.future) if body.future else None
    out = model.forecast(pd.DataFrame(body.history), future, body.horizon)  # type: ignore[attr-defined]
    return name, version, model, out


def _log(request: Request, name: str, version: int, ids: list[str], exogenous: list[str],
         out: pd.DataFrame, latency_ms: float) -> list[str]:  # fmt: skip
    state = getattr(request.app.state, "keizoku", None)
    log = getattr(state, "log", None)
    request_ids = [uuid.uuid4().hex for _ in range(len(out))]
    if log is None:
        return request_ids
    ts = time.time()
    numbers = {"lower", "upper", *exogenous}
    for rid, rec in zip(request_ids, out.to_dict(orient="records"), strict=True):
        entity = "/".join(str(rec[c]) for c in ids) if ids else None
        value = float(rec["forecast"])
        pred = Prediction(value, None, value, version, "forecast", rid, entity)
        inputs = {k: (int(v) if k == "step" else float(v) if k in numbers else str(v))
                  for k, v in rec.items() if k != "forecast"}  # fmt: skip
        log.append(pred, ts=ts, model=name, inputs=inputs, latency_ms=latency_ms)
    return request_ids


@router.post(
    "/v1/models/{name}/forecast", responses=errors_doc(), openapi_extra=body_doc(ForecastRequest)
)
async def forecast_route(name: str, request: Request, who: PredictCaller) -> Response:
    """The next-horizon forecast of each series in ``history``, with prediction intervals."""
    served_name(request, model_part(name))
    body = await parse_model(request, ForecastRequest)
    started = time.perf_counter()
    model_name, version, model, out = await asyncio.to_thread(forecast_ref, name, body)
    latency_ms = (time.perf_counter() - started) * 1000
    ids = list(model.spec.ids)
    exogenous = list(model.spec.exogenous)
    out["request_id"] = _log(request, model_name, version, ids, exogenous, out, latency_ms)
    time_col = model.spec.time or "time"
    out[time_col] = out[time_col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return json_response(
        {"model": model_name, "version": version, "level": model.info["level"],
         "forecasts": out.to_dict(orient="records")}
    )  # fmt: skip
