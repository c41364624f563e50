"""REST routes of the knowledge assistant: ``POST /v1/rag/{collection}/ask`` and ``/search``.

The caller comes from ``keizoku.serving.boundary`` like on every route (a ``predict`` key
when keys are required, checked before the body is read). The identity that decides which
documents a caller sees:

* a key: key → user → groups, the groups read from the users directory on every request
  (a key with no user sees nothing);
* no key, on a loopback server without keys: no identity is claimed, so the caller sees
  only documents open to ``group:everyone``. A ``user`` in the body is never honoured:
  anyone on the machine could claim to be anyone.

Errors are keizoku's JSON ``{"error": code, "message": ...}`` with the error's status.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from keizoku.auth import Principal, get_user_groups
from keizoku.names import check_name
from keizoku.rag.access import EVERYONE, Identity
from keizoku.serving.boundary import (
    KeizokuRoute,
    PredictCaller,
    body_doc,
    errors_doc,
    json_response,
    parse_model,
)

__all__ = ["router", "identity_of", "AskRequest", "SearchRequest"]

router = APIRouter(prefix="/v1/rag", tags=["rag"], route_class=KeizokuRoute)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"


class _Local(Identity):
    """A keyless caller on a loopback server: only what is open to everyone."""

    def principals(self) -> tuple[str, ...]:
        return (EVERYONE,)


def identity_of(caller: Principal | None) -> Identity:
    """Whose documents a caller sees (see the module docstring)."""
    if caller is None:
        return _Local(user=None)
    return Identity(caller.user, get_user_groups(caller.user))  # groups as of this request


@router.post("/{collection}/search", responses=errors_doc(), openapi_extra=body_doc(SearchRequest))
async def search_route(collection: str, request: Request, who: PredictCaller) -> Response:
    """Ranked chunks the caller may see."""
    from keizoku.rag import audit
    from keizoku.rag.collection import DEFAULT_FUSION, search
    from keizoku.rag.index import FusionConfig

    check_name(collection, "Collection name")
    body = await parse_model(request, SearchRequest)
    identity = identity_of(who)
    fusion = FusionConfig(DEFAULT_FUSION.alpha, DEFAULT_FUSION.neighbour, body.mode)
    hits = await asyncio.to_thread(
        search, collection, body.query, identity, k=body.k, fusion=fusion
    )
    cited = list(dict.fromkeys(h.source for h in hits))
    key = who.key_name if who is not None else None
    audit.record("search", collection, identity.user, body.query, cited, key, body.mode)
    return json_response(
        {"collection": collection, "query": body.query, "count": len(hits),
         "results": [h.to_dict() for h in hits]}
    )  # fmt: skip


@router.post("/{collection}/ask", responses=errors_doc(), openapi_extra=body_doc(AskRequest))
async def ask_route(collection: str, request: Request, who: PredictCaller) -> Response:
    """An answer with numbered citations (LLM when configured, else extractive)."""
    from keizoku.rag.answer import ask

    check_name(collection, "Collection name")
    body = await parse_model(request, AskRequest)
    key = who.key_name if who is not None else None
    result = await asyncio.to_thread(
        ask, collection, body.question, identity_of(who), k=body.k, key_name=key
    )
    return json_response({"collection": collection, **result.to_dict()})
