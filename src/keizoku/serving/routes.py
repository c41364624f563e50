"""The REST routes: predict, model info, admin reload, health, readiness, metrics.

Handlers are ``async def`` and read the server's state from ``request.app.state.keizoku``.
Every route takes its caller from ``keizoku.serving.boundary`` before it reads a byte of
the body, checks the model name and that it is served, and reads the body itself (bounded,
chunked or not). The predict route answers with bytes; its per-model OpenAPI entry is
written by ``keizoku.serving.openapi``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.responses import Response

from keizoku.data.validate import check_records
from keizoku.errors import KeizokuError
from keizoku.lifecycle.deployment import choose_variant
from keizoku.monitoring.log import feature_types
from keizoku.prediction import Prediction
from keizoku.serving.boundary import (
    AdminCaller,
    KeizokuRoute,
    NotReadyError,
    PredictCaller,
    allow_unseen,
    body_doc,
    caller,
    error_headers,
    error_response,
    errors_doc,
    json_response,
    parse_model,
    read_body,
    served_name,
)
from keizoku.serving.fastpath import parse_body, records_of, score
from keizoku.serving.metrics import CONTENT_TYPE, Metrics
from keizoku.serving.outage import StoreUnavailableError
from keizoku.serving.security import Guard
from keizoku.serving.state import ModelSet, ServedModel

if TYPE_CHECKING:
    from keizoku.registry.servable import ServableModel

__all__ = [
    "NotReadyError",
    "ServerState",
    "add_predict_route",
    "error_response",
    "json_response",
    "router",
]

router = APIRouter(route_class=KeizokuRoute)
_log = logging.getLogger("keizoku.serving")
THREAD_AT = 256  # batches this large are scored off the event loop


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, le=2**31, description="the version to make champion")
    reason: str = Field("", max_length=2000, description="why (kept in the audit log)")
    force: bool = Field(False, description="promote even if a gate refuses (audited)")


@dataclass
class ServerState:
    """Everything the handlers share."""

    models: ModelSet
    guard: Guard
    metrics: Metrics
    log: Any = None  # keizoku.monitoring.log.PredictionLog, or None when logging is off
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def _state(request: Request) -> ServerState:
    return request.app.state.keizoku  # type: ignore[no-any-return]


def _served(request: Request, name: str) -> ServedModel:
    st = _state(request)
    return st.models.models[served_name(request, name)]


# ---------------------------------------------------------------------------- predict


async def predict(request: Request) -> Response:
    """Score one record or a list of records (see docs/serving.md for the shapes).

    A plain Starlette endpoint (``add_predict_route``): FastAPI's dependency solving would
    cost more than the rest of the request's own work.
    """
    started = time.perf_counter()
    name: str = request.path_params["name"]
    st = _state(request)
    label, version, variant = "<unknown>", "-", "-"
    try:
        caller(request, "predict")
        served = _served(request, name)
        label = name
        payload = parse_body(await read_body(request))
        records, single = records_of(payload, set(served.validator.columns))
        allowed = check_records(
            served.validator, records, single=single, allow_unseen=allow_unseen(request)
        )
        preds, shadow = await _predict(st, served, records, started)
    except KeizokuError as exc:
        st.metrics.request(label, version, variant, exc.http_status, time.perf_counter() - started)
        if exc.http_status >= 500:
            st.metrics.error(label, exc.code)
        return error_response(exc)
    variants = {(p.version, p.variant) for p in preds}
    if len(variants) == 1:
        version, variant = str(preds[0].version), preds[0].variant
    else:
        version, variant = "mixed", "mixed"
    st.metrics.request(name, version, variant, 200, time.perf_counter() - started)
    body: dict[str, Any] = {"model": name, **preds[0].to_response()} if single else {
        "model": name, "predictions": [p.to_response() for p in preds]}  # fmt: skip
    if allowed:
        body["warnings"] = allowed.to_dict()
    return json_response(body, background=shadow)


def add_predict_route(app: Any) -> None:
    """Mount ``POST /v1/models/{name}/predict`` (its OpenAPI entries come from openapi.py)."""
    app.add_route("/v1/models/{name}/predict", predict, methods=["POST"], include_in_schema=False)


async def _predict(
    st: ServerState, served: ServedModel, records: list[dict[str, Any]], started: float
) -> tuple[list[Prediction], BackgroundTask | None]:
    dep = served.deployment
    groups = _route(served, records)
    preds: list[Prediction | None] = [None] * len(records)
    for alias, idx in groups.items():
        lv = served.variants[alias]
        part = [records[i] for i in idx]
        outs = await _score(lv.model, part, lv.version, alias, None, dep.entity_key)
        st.metrics.predicted(served.name, lv.version, alias, len(idx), shadow=False)
        for i, out in zip(idx, outs, strict=True):
            preds[i] = out
    done = [p for p in preds if p is not None]
    latency_ms = (time.perf_counter() - started) * 1000
    if st.log is not None:
        _log_items(st, served, records, done, latency_ms, shadow=False)
    shadow = None
    if dep.shadow and dep.shadow in served.variants:
        todo = [i for i, p in enumerate(done) if p.variant != dep.shadow]
        if todo:
            shadow = BackgroundTask(_shadow, st, served, records, done, todo)
    return done, shadow


def _route(served: ServedModel, records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Which records each alias answers (by weight, sticky by the entity id when set)."""
    dep = served.deployment
    split = {a: w for a, w in dep.split.items() if w > 0 and a in served.variants}
    if len(split) <= 1:
        alias = next(iter(split), "champion")
        return {alias: list(range(len(records)))}
    groups: dict[str, list[int]] = {}
    key = dep.sticky_key
    for i, rec in enumerate(records):
        entity = rec.get(key) if key is not None else None
        groups.setdefault(choose_variant(split, entity), []).append(i)
    return groups


async def _score(
    model: ServableModel,
    records: list[dict[str, Any]],
    version: int,
    variant: str,
    ids: list[str] | None,
    entity_key: str | None,
) -> list[Prediction]:
    args = (model, records)
    kw = {"version": version, "variant": variant, "ids": ids, "entity_key": entity_key}
    if len(records) >= THREAD_AT:
        return await asyncio.to_thread(score, *args, **kw)  # type: ignore[arg-type]
    return score(*args, **kw)  # type: ignore[arg-type]


def _types(served: ServedModel) -> Any:
    """The log's ``f__`` column types of the served schema (computed once per snapshot)."""
    key = id(served)
    hit = _TYPES.get(key)
    if hit is None or hit[0] is not served:
        hit = (served, feature_types(served.validator.schema))
        if len(_TYPES) > 64:
            _TYPES.clear()
        _TYPES[key] = hit
    return hit[1]


_TYPES: dict[int, tuple[ServedModel, Any]] = {}


def _log_items(
    st: ServerState,
    served: ServedModel,
    records: list[dict[str, Any]],
    preds: list[Prediction],
    latency_ms: float,
    *,
    shadow: bool,
) -> None:
    ts = time.time()
    types = _types(served)
    for rec, pred in zip(records, preds, strict=True):
        st.log.append(
            pred,
            ts=ts,
            model=served.name,
            inputs=rec,
            latency_ms=latency_ms,
            shadow=shadow,
            types=types,
        )


async def _shadow(
    st: ServerState,
    served: ServedModel,
    records: list[dict[str, Any]],
    preds: list[Prediction],
    todo: list[int],
) -> None:
    """Score with the shadow variant after the response went out; log with shadow=True."""
    alias = served.deployment.shadow or ""
    lv = served.variants[alias]
    part = [records[i] for i in todo]
    ids = [preds[i].request_id for i in todo]
    started = time.perf_counter()
    try:
        outs = await _score(lv.model, part, lv.version, alias, ids, served.deployment.entity_key)
    except (KeizokuError, ValueError, TypeError, KeyError, IndexError) as exc:  # never the caller
        st.metrics.error(served.name, "shadow")
        _log.error("Shadow variant '%s' of '%s' failed: %s", alias, served.name, exc)
        return
    st.metrics.predicted(served.name, lv.version, alias, len(part), shadow=True)
    if st.log is None:
        return
    latency_ms = (time.perf_counter() - started) * 1000
    _log_items(st, served, part, outs, latency_ms, shadow=True)


# ------------------------------------------------------------------------- model info


def _schema_info(schema: Any) -> list[dict[str, Any]]:
    keep = ("name", "kind", "role", "dtype", "nullable", "categories", "min", "max")
    return [
        {k: v for k, v in col.model_dump().items() if k in keep and v is not None}
        for col in schema.columns
        if col.role != "target"
    ]


def _summary(served: ServedModel) -> dict[str, Any]:
    champ = served.champion.model
    return {
        "name": served.name,
        "task": champ.task,
        "served": served.versions(),
        "deployment": served.deployment.model_dump(),
        "predict": f"/v1/models/{served.name}/predict",
    }


@router.get("/v1/models", tags=["models"], responses=errors_doc(401, 403))
async def list_served(request: Request, who: PredictCaller) -> Response:
    """The served models (``models``: task, the version behind each alias, the deployment).

    The same answer is OpenAI's models list (``object``, ``data``: the knowledge
    collections the caller may read), so a stock OpenAI client with ``base_url=…/v1``
    works unchanged; each reader ignores the other's keys.
    """
    from keizoku.serving.openai_routes import collections_as_models

    st = _state(request)
    models = [_summary(m) for _, m in sorted(st.models.models.items())]
    data = await collections_as_models(who)
    return json_response({"object": "list", "data": data, "models": models})


@router.get(
    "/v1/models/{name}", tags=["models"], responses=errors_doc(400, 401, 403, 404, 422, 503)
)
async def model_detail(name: str, request: Request, who: PredictCaller) -> Response:
    """One model: its registered versions (aliases, metrics, tags) and the served schema."""
    from keizoku.registry.models import list_versions

    served = _served(request, name)
    versions = await asyncio.to_thread(list_versions, served.name)
    champ = served.champion.model
    out = _summary(served)
    out.update(
        classes=champ.classes,
        metric=champ.metric,
        schema=_schema_info(champ.schema),
        versions=[
            {
                "version": v.version,
                "aliases": v.aliases,
                "metrics": v.metrics,
                "tags": v.tags,
                "created": v.created,
            }
            for v in versions
        ],
    )
    return json_response(out)


@router.post(
    "/v1/admin/models/{name}/reload",
    tags=["admin"],
    responses=errors_doc(400, 401, 403, 404, 422, 503),
)
async def reload_model(name: str, request: Request, who: AdminCaller) -> Response:
    """Load what the model's aliases point at now and swap it in (admin key)."""
    st = _state(request)
    served = _served(request, name)
    report = await asyncio.to_thread(st.models.refresh, served.name, force=True)
    if report.error is not None:
        body = {"error": "reload_failed", "message": report.error, "details": report.to_dict()}
        return json_response(body, report.status)
    return json_response(report.to_dict())


@router.post(
    "/v1/admin/models/{name}/promote",
    tags=["admin"],
    responses=errors_doc(400, 401, 403, 404, 409, 413, 422, 503),
    openapi_extra=body_doc(PromoteRequest),
)
async def promote_model(name: str, request: Request, who: AdminCaller) -> Response:
    """Make a version the champion (gates apply; audited), then swap it in now (admin key)."""
    from keizoku.lifecycle.experiments import promote  # keeps an active deployment consistent

    st = _state(request)
    served = _served(request, name)
    body = await parse_model(request, PromoteRequest)
    actor = f"key:{who.key_name}" if who is not None else None
    entry = await asyncio.to_thread(
        promote, served.name, body.version, actor=actor, reason=body.reason, force=body.force
    )
    report = await asyncio.to_thread(st.models.refresh, served.name, force=True)
    status = 200 if report.error is None else report.status
    return json_response({"promotion": entry, "swap": report.to_dict()}, status)


# ------------------------------------------------------------------------------ health


@router.get("/healthz", tags=["health"])
async def healthz() -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


@router.get("/readyz", tags=["health"], responses={503: {"description": "still loading"}})
async def readyz(request: Request) -> Response:
    """Ready once every served model is loaded (503 before, with the reason and
    ``Retry-After``; ``"error": "store_unavailable"`` while the store does not answer)."""
    st = _state(request)
    if not st.models.ready:
        reason = st.models.load_error or "loading models"
        body: dict[str, Any] = {"ready": False, "reason": reason}
        if st.models.store_down:
            body["error"] = StoreUnavailableError.code
        return json_response(body, 503, headers=error_headers(NotReadyError(reason)))
    models = {name: m.versions() for name, m in st.models.models.items()}
    return json_response({"ready": True, "models": models})


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format 0.0.4)."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)
