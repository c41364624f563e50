"""The web boundary: who calls, what they may send, and how an error answers.

Every route of the server goes through these, in this order:

1. ``caller(request, role)`` (or the ``PredictCaller`` / ``AdminCaller`` dependencies):
   the caller's ``Principal`` (``None`` when keys are off), from the server's
   ``security.Guard`` — roles, the loopback rule, revoked keys. It runs *before* the
   body is read, so a request without a key gets 401 whatever its body holds.
2. ``served_name(request, name)``: the model name in the URL follows ``names.check_name``
   (400 otherwise) and is one the server serves (404 otherwise).
3. ``read_body(request)``: the raw body, read in chunks and cut off at ``MAX_BODY`` bytes
   with 413 (``Content-Length`` or not, e.g. ``Transfer-Encoding: chunked``); then
   ``parse_json`` / ``parse_model`` turn it into JSON / a pydantic request model, with
   keizoku's 422 naming the field.

``install(app)`` registers the one exception handler: every ``KeizokuError`` becomes its
JSON response ``{"error": code, "message": ..., "details": ...}`` with its HTTP status,
and FastAPI's ``RequestValidationError`` / Starlette's ``HTTPException`` are answered in
the same format. ``KeizokuRoute`` does the same for a router mounted in another app.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from keizoku.auth import Principal
from keizoku.errors import KeizokuError, NotFoundError, UserInputError, ValidationError
from keizoku.names import check_name
from keizoku.serving.fastpath import PayloadTooLarge, dumps, parse_body
from keizoku.serving.outage import RETRY_AFTER_S, StoreUnavailableError, outage
from keizoku.serving.security import Guard

__all__ = [
    "MAX_BODY",
    "AdminCaller",
    "ErrorBody",
    "KeizokuRoute",
    "NotReadyError",
    "StoreUnavailableError",
    "PredictCaller",
    "model_part",
    "caller",
    "error_response",
    "error_headers",
    "errors_doc",
    "install",
    "allow_unseen",
    "body_doc",
    "json_response",
    "parse_model",
    "read_body",
    "read_json",
    "served_name",
]

MAX_BODY = 32 * 1024 * 1024
M = TypeVar("M", bound=BaseModel)
# A router mounted in another app (no ``keizoku serve`` state): keys are required as soon
# as one exists; that app's own bind decides who can reach it.
# Nothing is remembered there (ttl 0): every request reads the keys afresh.
_FALLBACK = Guard(loopback=True, ttl_s=0.0)


class NotReadyError(KeizokuError):
    """Nothing to answer with yet: loading, no model registered, or no champion yet."""

    code = "not_ready"
    http_status = 503
    retry_after_s = RETRY_AFTER_S


class ErrorBody(BaseModel):
    """keizoku's error format (every 4xx/5xx answer)."""

    error: str = Field(description="error code, e.g. validation, unauthorized, not_found")
    message: str = Field(description="what is wrong, the value, and the fix")
    details: Any = Field(None, description="per-field problems for 422: loc, field, msg, ...")


_DESCRIPTIONS = {
    400: "bad input (e.g. a model name that breaks the naming rule)",
    401: "no API key, or an invalid or revoked one",
    403: "the key's role is not enough",
    404: "the model (or collection) is not served here",
    413: "the body is larger than the limit, or has too many records",
    422: "the body is not valid: a field is missing, unknown, of the wrong type, or unseen",
    409: "the current state refuses it (a gate, an artifact's hash, a conflict)",
    503: "not ready (loading, no model registered, no champion yet) or the store does not "
    "answer; see Retry-After",
    429: "too many requests from this caller (`keizoku serve --rate-limit`); see Retry-After",
}
_DEFAULT = (400, 401, 403, 404, 413, 422)


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for ``codes`` (the common six by default), keizoku's format."""
    chosen = codes or _DEFAULT
    if 401 in chosen:  # every route that asks who calls is rate-limited the same way
        chosen = (*chosen, 429)
    return {c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in chosen}


def json_response(
    data: Any, status: int = 200, background: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        dumps(data), status, headers, media_type="application/json", background=background
    )


def error_headers(exc: KeizokuError) -> dict[str, str]:
    """The headers an error's response carries (``WWW-Authenticate``, ``Retry-After``)."""
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        return {"Retry-After": str(max(1, math.ceil(retry)))}
    return {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}


def error_response(exc: KeizokuError) -> Response:
    """The one place an error becomes a response."""
    return Response(
        dumps(exc.to_dict()), exc.http_status, headers=error_headers(exc),
        media_type="application/json",
    )  # fmt: skip


# ------------------------------------------------------------------------ the caller


def _guard(request: Request) -> Guard:
    state = getattr(request.app.state, "keizoku", None)
    guard = getattr(state, "guard", None)
    return guard if isinstance(guard, Guard) else _FALLBACK


def caller(request: Request, role: str) -> Principal | None:
    """The caller of ``request`` for a route that needs ``role`` (None: keys are off).

    503 (``outage``) when the keys cannot be read because the store is away and the guard
    has no recent answer for this caller to fall back on.
    """
    try:
        return _guard(request).principal(request, role)
    except Exception as exc:
        down = outage(exc)
        if down is None:
            raise
        raise down from exc


def _predict_caller(request: Request) -> Principal | None:
    return caller(request, "predict")


def _admin_caller(request: Request) -> Principal | None:
    return caller(request, "admin")


PredictCaller = Annotated[Principal | None, Depends(_predict_caller)]
AdminCaller = Annotated[Principal | None, Depends(_admin_caller)]


def model_part(ref: str) -> str:
    """The model name of ``NAME``, ``NAME@alias`` or ``NAME:version`` (checked by the caller)."""
    for sep in ("@", ":"):
        if sep in ref:
            return ref.split(sep, 1)[0]
    return ref


def served_name(request: Request, name: str) -> str:
    """``name`` when it is a valid model name this server serves; 400/404/503 otherwise."""
    check_name(name)
    state = getattr(request.app.state, "keizoku", None)
    if state is None:  # mounted outside ``keizoku serve``: the registry decides
        return name
    models = state.models
    if name in models.models:
        return name
    if name in models.waiting:
        raise NotReadyError(
            f"Model '{name}' is registered but not served yet: {models.waiting[name]}"
        )
    if not models.ready:
        reason = models.load_error or "The server is still loading its models."
        if models.store_down:
            raise StoreUnavailableError(reason)
        raise NotReadyError(f"{reason} Retry in a moment.")
    from keizoku.names import closest

    best = closest(name, list(models.models))
    hint = f" Did you mean '{best}'?" if best else ""
    raise NotFoundError(
        f"Model '{name}' is not served here.{hint} Served models: {sorted(models.models)} "
        "(GET /v1/models)."
    )


def allow_unseen(request: Request) -> bool:
    """``?allow_unseen=true``: score unseen categories and missing fields, with a warning."""
    return request.query_params.get("allow_unseen", "").lower() in ("1", "true", "yes")


# -------------------------------------------------------------------------- the body


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, read in chunks; 413 as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(
            f"The body is {length} bytes; the limit is {limit}. Send fewer records per request."
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The body is more than {limit} bytes (read in chunks); the limit is {limit}. "
                "Send fewer records per request."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    """The body as JSON (bounded; keizoku's 422 when it is empty or not JSON)."""
    return parse_body(await read_body(request))


def _problems(exc: PydanticValidationError | RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        field = next((p for p in reversed(loc) if isinstance(p, str) and p != "body"), None)
        item: dict[str, Any] = {"loc": loc, "field": field, "msg": str(err.get("msg", ""))}
        if "input" in err and err.get("type") != "missing":
            item["value"] = _short(err["input"])
        out.append(item)
    return out


def _short(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return value if len(text) <= 80 else text[:80] + "…"


def _validation(problems: list[dict[str, Any]]) -> ValidationError:
    first = problems[0] if problems else {"field": None, "msg": "invalid"}
    where = f"field '{first['field']}'" if first.get("field") else "the request"
    value = f" (value {first['value']!r})" if "value" in first else ""
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    return ValidationError(
        f"Invalid request: {where}: {first['msg']}{value}{more}. See 'details' and "
        "/openapi.json for the expected body.",
        details=problems,
    )


async def parse_model(request: Request, model: type[M]) -> M:
    """The body as ``model`` (bounded read; keizoku's 422 naming the field)."""
    payload = await read_json(request)
    try:
        return model.model_validate(payload)
    except PydanticValidationError as exc:
        raise _validation(_problems(exc)) from None


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing a body the handler reads itself (after the auth check)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


# ------------------------------------------------------------------------ the handler


async def _keizoku_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError | HTTPException):
        down = await asyncio.to_thread(outage, exc)  # a store that is away: 503, not 4xx/500
        if down is not None:
            return error_response(down)
    if isinstance(exc, KeizokuError):
        return error_response(exc)
    if isinstance(exc, RequestValidationError):
        return error_response(_validation(_problems(exc)))
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = UserInputError(str(exc.detail))
        err.code, err.http_status = code, exc.status_code
        response = error_response(err)
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    raise exc


def install(app: FastAPI) -> None:
    """Register the one exception handler of the app (see the module docstring)."""
    for kind in (KeizokuError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, _keizoku_error)


class KeizokuRoute(APIRoute):
    """A route that answers errors in keizoku's format even outside ``keizoku serve``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (KeizokuError, RequestValidationError) as exc:
                return await _keizoku_error(request, exc)
            except HTTPException:
                raise
            except Exception as exc:  # a store that is away answers 503; anything else: 500
                down = await asyncio.to_thread(outage, exc)
                if down is None:
                    raise
                return error_response(down)

        return route
