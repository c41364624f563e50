"""REST routes of the knowledge assistant: ``POST /v1/rag/{collection}/ask`` and ``/search``.

The caller's identity comes from the API key (``Authorization: Bearer <key>`` or
``X-API-Key``): key -> user -> groups, read from the users directory on every request.
Errors are JSON ``{"error": code, "message": ...}`` with the error's HTTP status.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from keizoku.auth import Principal, authenticate, require_role
from keizoku.errors import AuthError, KeizokuError
from keizoku.rag.access import Identity

__all__ = ["router", "principal_from_request", "AskRequest", "SearchRequest"]

router = APIRouter(prefix="/v1/rag", tags=["rag"])


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"


def _token(request: Request) -> str | None:
    from keizoku.auth import token_from_headers

    return token_from_headers(request.headers)


def principal_from_request(request: Request) -> Principal:
    """FastAPI dependency: the authenticated principal (role predict or admin)."""
    return require_role(authenticate(_token(request)), "predict")


def _error(exc: KeizokuError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


def _principal(request: Request) -> Principal | JSONResponse:
    try:
        return principal_from_request(request)
    except AuthError as exc:
        return _error(exc)


Caller = Annotated[Principal | JSONResponse, Depends(_principal)]


@router.post("/{collection}/search")
def search_route(collection: str, body: SearchRequest, caller: Caller) -> JSONResponse:
    """Ranked chunks the caller may see."""
    if isinstance(caller, JSONResponse):
        return caller
    from keizoku.rag import audit
    from keizoku.rag.collection import DEFAULT_FUSION, search
    from keizoku.rag.index import FusionConfig

    identity = Identity(caller.user, caller.groups)
    fusion = FusionConfig(DEFAULT_FUSION.alpha, DEFAULT_FUSION.neighbour, body.mode)
    try:
        hits = search(collection, body.query, identity, k=body.k, fusion=fusion)
    except KeizokuError as exc:
        return _error(exc)
    cited = list(dict.fromkeys(h.source for h in hits))
    audit.record("search", collection, identity.user, body.query, cited, caller.key_name, body.mode)
    return JSONResponse(
        {"collection": collection, "query": body.query, "count": len(hits),
         "results": [h.to_dict() for h in hits]}
    )  # fmt: skip


@router.post("/{collection}/ask")
def ask_route(collection: str, body: AskRequest, caller: Caller) -> JSONResponse:
    """An answer with numbered citations (LLM when configured, else extractive)."""
    if isinstance(caller, JSONResponse):
        return caller
    from keizoku.rag.answer import ask

    identity = Identity(caller.user, caller.groups)
    try:
        result = ask(collection, body.question, identity, k=body.k, key_name=caller.key_name)
    except KeizokuError as exc:
        return _error(exc)
    return JSONResponse({"collection": collection, **result.to_dict()})
