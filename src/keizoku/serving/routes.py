"""The REST routes: predict, model info, admin reload, health, readiness, metrics.

Handlers are ``async def`` and read the server's state from ``request.app.state.keizoku``.
The predict route reads the raw body itself (no FastAPI body parsing) and answers with
bytes; its per-model OpenAPI entry is written by ``keizoku.serving.openapi``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.responses import Response

from keizoku.errors import KeizokuError, NotFoundError
from keizoku.serving.deploy import choose_variant
from keizoku.serving.fastpath import (
    PayloadTooLarge,
    dumps,
    new_id,
    parse_body,
    records_of,
    score,
    validate,
)
from keizoku.serving.metrics import CONTENT_TYPE, Metrics
from keizoku.serving.security import Guard
from keizoku.serving.state import ModelSet, ServedModel

__all__ = [
    "add_predict_route",
    "router",
    "ServerState",
    "NotReadyError",
    "json_response",
    "error_response",
]

router = APIRouter()
_log = logging.getLogger("keizoku.serving")
MAX_BODY = 32 * 1024 * 1024
THREAD_AT = 256  # batches this large are scored off the event loop


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, le=2**31, description="the version to make champion")
    reason: str = Field("", max_length=2000, description="why (kept in the audit log)")
    force: bool = Field(False, description="promote even if a gate refuses (audited)")


class NotReadyError(KeizokuError):
    code = "not_ready"
    http_status = 503


@dataclass
class ServerState:
    """Everything the handlers share."""

    models: ModelSet
    guard: Guard
    metrics: Metrics
    log: Any = None  # keizoku.monitoring.log.PredictionLog, or None when logging is off
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def json_response(data: Any, status: int = 200, background: Any = None) -> Response:
    return Response(dumps(data), status, media_type="application/json", background=background)


def error_response(exc: KeizokuError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return Response(
        dumps(exc.to_dict()), exc.http_status, headers=headers, media_type="application/json"
    )


def _state(request: Request) -> ServerState:
    return request.app.state.keizoku  # type: ignore[no-any-return]


def _served(st: ServerState, name: str) -> ServedModel:
    served = st.models.models.get(name)
    if served is not None:
        return served
    if not st.models.ready:
        raise NotReadyError("The server is still loading its models; retry in a moment.")
    from keizoku.data.schema import closest

    best = closest(name, list(st.models.models))
    hint = f" Did you mean '{best}'?" if best else ""
    raise NotFoundError(
        f"Model '{name}' is not served here.{hint} Served models: {sorted(st.models.models)} "
        "(GET /v1/models)."
    )


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"The body is {length} bytes; the limit is {MAX_BODY}.")
    return await request.body()


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
        st.guard.principal(request, "predict")
        served = _served(st, name)
        label = name
        payload = parse_body(await _body(request))
        records, single = records_of(payload, set(served.validator.columns))
        validate(served.validator, records, single)
        items, shadow = await _predict(st, served, records, started)
    except KeizokuError as exc:
        st.metrics.request(label, version, variant, exc.http_status, time.perf_counter() - started)
        if exc.http_status >= 500:
            st.metrics.error(label, exc.code)
        return error_response(exc)
    variants = {(i["version"], i["variant"]) for i in items}
    if len(variants) == 1:
        version, variant = str(items[0]["version"]), items[0]["variant"]
    else:
        version, variant = "mixed", "mixed"
    st.metrics.request(name, version, variant, 200, time.perf_counter() - started)
    body: dict[str, Any] = {"model": name, **items[0]} if single else {
        "model": name, "predictions": items}  # fmt: skip
    return json_response(body, background=shadow)


def add_predict_route(app: Any) -> None:
    """Mount ``POST /v1/models/{name}/predict`` (its OpenAPI entries come from openapi.py)."""
    app.add_route("/v1/models/{name}/predict", predict, methods=["POST"], include_in_schema=False)


async def _predict(
    st: ServerState, served: ServedModel, records: list[dict[str, Any]], started: float
) -> tuple[list[dict[str, Any]], BackgroundTask | None]:
    dep = served.deployment
    groups = _route(served, records)
    items: list[dict[str, Any]] = [{} for _ in records]
    ids = [new_id() for _ in records]
    for alias, idx in groups.items():
        lv = served.variants[alias]
        part = [records[i] for i in idx]
        outs = await _score(lv.model, part)
        st.metrics.predicted(served.name, lv.version, alias, len(idx), shadow=False)
        for i, out in zip(idx, outs, strict=True):
            item = {"request_id": ids[i], **out, "version": lv.version, "variant": alias}
            if dep.entity_key is not None:
                item["entity_id"] = records[i].get(dep.entity_key)
            items[i] = item
    latency_ms = (time.perf_counter() - started) * 1000
    if st.log is not None:
        _log_items(st, served.name, records, items, latency_ms, shadow=False)
    shadow = None
    if dep.shadow and dep.shadow in served.variants:
        todo = [i for i, it in enumerate(items) if it["variant"] != dep.shadow]
        if todo:
            shadow = BackgroundTask(_shadow, st, served, records, items, todo)
    return items, shadow


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


async def _score(model: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(records) >= THREAD_AT:
        return await asyncio.to_thread(score, model, records)
    return score(model, records)


def _log_items(
    st: ServerState,
    name: str,
    records: list[dict[str, Any]],
    items: list[dict[str, Any]],
    latency_ms: float,
    *,
    shadow: bool,
) -> None:
    ts = time.time()
    for rec, item in zip(records, items, strict=True):
        output = {k: item[k] for k in ("prediction", "probabilities") if k in item}
        entity = item.get("entity_id")
        st.log.append(
            request_id=item["request_id"],
            ts=ts,
            model=name,
            version=item["version"],
            variant=item["variant"],
            inputs=rec,
            output=output,
            latency_ms=latency_ms,
            entity_id=None if entity is None else str(entity),
            shadow=shadow,
        )


async def _shadow(
    st: ServerState,
    served: ServedModel,
    records: list[dict[str, Any]],
    items: list[dict[str, Any]],
    todo: list[int],
) -> None:
    """Score with the shadow variant after the response went out; log with shadow=True."""
    alias = served.deployment.shadow or ""
    lv = served.variants[alias]
    part = [records[i] for i in todo]
    started = time.perf_counter()
    try:
        outs = await _score(lv.model, part)
    except (KeizokuError, ValueError, TypeError, KeyError, IndexError) as exc:  # never the caller
        st.metrics.error(served.name, "shadow")
        _log.error("Shadow variant '%s' of '%s' failed: %s", alias, served.name, exc)
        return
    st.metrics.predicted(served.name, lv.version, alias, len(part), shadow=True)
    if st.log is None:
        return
    latency_ms = (time.perf_counter() - started) * 1000
    shadow_items = []
    for i, out in zip(todo, outs, strict=True):
        item = {"request_id": items[i]["request_id"], **out, "version": lv.version}
        item["variant"] = alias
        if "entity_id" in items[i]:
            item["entity_id"] = items[i]["entity_id"]
        shadow_items.append(item)
    _log_items(st, served.name, part, shadow_items, latency_ms, shadow=True)


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


@router.get("/v1/models", tags=["models"])
async def list_served(request: Request) -> Response:
    """The served models: task, the version behind each alias, the deployment."""
    st = _state(request)
    try:
        st.guard.principal(request, "predict")
    except KeizokuError as exc:
        return error_response(exc)
    models = [_summary(m) for _, m in sorted(st.models.models.items())]
    return json_response({"models": models})


@router.get("/v1/models/{name}", tags=["models"])
async def model_detail(name: str, request: Request) -> Response:
    """One model: its registered versions (aliases, metrics, tags) and the served schema."""
    from keizoku.registry.store import list_versions

    st = _state(request)
    try:
        st.guard.principal(request, "predict")
        served = _served(st, name)
        versions = await asyncio.to_thread(list_versions, name)
    except KeizokuError as exc:
        return error_response(exc)
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


@router.post("/v1/admin/models/{name}/reload", tags=["admin"])
async def reload_model(name: str, request: Request) -> Response:
    """Load what the model's aliases point at now and swap it in (admin key)."""
    st = _state(request)
    try:
        st.guard.principal(request, "admin")
        _served(st, name)
    except KeizokuError as exc:
        return error_response(exc)
    report = await asyncio.to_thread(st.models.refresh, name, force=True)
    if report.error is not None:
        body = {"error": "reload_failed", "message": report.error, "details": report.to_dict()}
        return json_response(body, report.status)
    return json_response(report.to_dict())


@router.post("/v1/admin/models/{name}/promote", tags=["admin"])
async def promote_model(name: str, body: PromoteRequest, request: Request) -> Response:
    """Make a version the champion (gates apply; audited), then swap it in now (admin key)."""
    from keizoku.lifecycle.rollout import promote

    st = _state(request)
    try:
        caller = st.guard.principal(request, "admin")
        _served(st, name)
        actor = f"key:{caller.key_name}" if caller is not None else None
        entry = await asyncio.to_thread(
            promote, name, body.version, actor=actor, reason=body.reason, force=body.force
        )
    except KeizokuError as exc:
        return error_response(exc)
    report = await asyncio.to_thread(st.models.refresh, name, force=True)
    status = 200 if report.error is None else report.status
    return json_response({"promotion": entry, "swap": report.to_dict()}, status)


# ------------------------------------------------------------------------------ health


@router.get("/healthz", tags=["health"])
async def healthz() -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> Response:
    """Ready once every served model is loaded (503 before, with the reason)."""
    st = _state(request)
    if not st.models.ready:
        reason = st.models.load_error or "loading models"
        return json_response({"ready": False, "reason": reason}, 503)
    models = {name: m.versions() for name, m in st.models.models.items()}
    return json_response({"ready": True, "models": models})


@router.get("/metrics", tags=["health"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format 0.0.4)."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)
