"""The knowledge assistant behind the OpenAI API: chat completions and a models list.

A stock OpenAI client works against ``keizoku serve`` unchanged, with
``base_url=http://HOST:PORT/v1`` (or ``…/openai/v1``) and a keizoku API key as its
``api_key``:

* ``GET /v1/models``: the collections the caller may read (at least one document
  visible), as OpenAI "models" in ``data``; the same answer carries keizoku's list of
  served ML models in ``models`` (``serving/routes.py``). A key without a user gets an
  empty ``data`` there. ``GET /openai/v1/models`` answers ``data`` alone, and refuses
  such a key (403).
* ``POST /openai/v1/chat/completions`` (and ``/v1/chat/completions``): ``model`` names the
  collection, the last user message is the question. The answer comes from
  ``keizoku.rag.answer.ask``: the same access filter, audit log and LLM (or extractive)
  path as ``keizoku rag ask``. With ``"stream": true`` the LLM's tokens are passed on as
  server-sent events as it writes them (``chat.completion.chunk`` objects; then the
  "Sources:" lines, the citations on the last chunk, and ``data: [DONE]``); an LLM that
  fails before its first token is a 502, not a cut stream.

Identity comes from the API key only (key → user → groups, read on every request); a
``user`` field in the body is ignored. A key without a user is refused (403); a keyless
caller on a loopback server without keys sees only documents open to ``group:everyone``
(as on ``/v1/rag``). The model only ever receives the question and the passages the
caller may read, never the client's other messages, so text in a document cannot pull in
other documents. Citations are appended to the message and returned as ``citations`` (on
the completion, and on the last stream chunk). Body size: the same limit as predict.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from keizoku.auth import Principal
from keizoku.errors import ForbiddenError, ValidationError
from keizoku.names import check_name
from keizoku.serving.boundary import (
    KeizokuRoute,
    PredictCaller,
    body_doc,
    errors_doc,
    json_response,
    parse_model,
)
from keizoku.serving.rag_routes import identity_of

__all__ = ["router", "ChatRequest"]

router = APIRouter(tags=["openai"], route_class=KeizokuRoute)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """What keizoku reads of an OpenAI chat request; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=64, description="the collection")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    k: int = Field(default=5, ge=1, le=50, description="passages retrieved (keizoku extension)")


def _question(body: ChatRequest) -> str:
    for msg in reversed(body.messages):
        if msg.role != "user":
            continue
        if isinstance(msg.content, str):
            text = msg.content
        else:
            parts = msg.content or []
            text = " ".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")
        if text.strip():
            if len(text) > 4000:
                raise ValidationError(
                    f"The last user message is {len(text)} characters; the limit is 4000. "
                    "Ask a shorter question."
                )
            return text.strip()
    raise ValidationError(
        "No user message with text in 'messages'. Send "
        '[{"role": "user", "content": "your question"}].'
    )


def _identity(who: Principal | None) -> Any:
    if who is not None and not who.user:
        raise ForbiddenError(
            f"Key {who.key_name!r} carries no user, so it may read no document. Create a key "
            "for a user: 'keizoku keys create --role predict --name NAME --user USER'."
        )
    return identity_of(who)


def _with_sources(answer: str, citations: list[dict[str, Any]]) -> str:
    if not citations:
        return answer
    lines = [
        f"[{c['n']}] {c['title']}" + (f" — {c['heading']}" if c["heading"] else "")
        + f" ({c['source']})"
        for c in citations
    ]  # fmt: skip
    return answer + "\n\nSources:\n" + "\n".join(lines)


def _cited(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.to_dict().items() if k != "chunk_id"} for c in result.citations]


def _readable(identity: Any) -> list[dict[str, Any]]:
    """The collections ``identity`` may read (one visible document at least), as models."""
    from keizoku.rag.collection import list_docs
    from keizoku.rag.store import list_collections

    names = [n for n in list_collections() if list_docs(n, identity)]
    return [{"id": n, "object": "model", "created": 0, "owned_by": "keizoku"} for n in names]


async def collections_as_models(who: Principal | None) -> list[dict[str, Any]]:
    """OpenAI's ``data`` for ``GET /v1/models``: empty for a key that carries no user."""
    if who is not None and not who.user:
        return []
    return await asyncio.to_thread(_readable, identity_of(who))


@router.get("/openai/v1/models", responses=errors_doc(401, 403))
async def models_route(who: PredictCaller) -> Response:
    """The collections the caller may read, as OpenAI models."""
    identity = _identity(who)
    data = await asyncio.to_thread(_readable, identity)
    return json_response({"object": "list", "data": data})


async def _chat(request: Request, who: Principal | None) -> Response:
    from keizoku.rag.answer import ask, ask_stream

    body = await parse_model(request, ChatRequest)
    check_name(body.model, "Collection name")
    identity = _identity(who)
    question = _question(body)
    key = who.key_name if who is not None else None
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model,
    }  # fmt: skip
    if body.stream:
        streamed = await asyncio.to_thread(
            ask_stream, body.model, question, identity, k=body.k, key_name=key
        )
        await asyncio.to_thread(streamed.start)  # LLM errors: a status code, not a cut stream
        return StreamingResponse(
            _events(base, streamed, body.model), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )  # fmt: skip
    result = await asyncio.to_thread(ask, body.model, question, identity, k=body.k, key_name=key)
    citations = _cited(result)
    return json_response({
        **base, "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": _with_sources(result.answer, citations)},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        **_meta(result, citations, body.model),
    })  # fmt: skip


def _meta(result: Any, citations: list[dict[str, Any]], collection: str) -> dict[str, Any]:
    return {"citations": citations, "keizoku": {"mode": result.mode, "collection": collection}}


def _events(base: dict[str, Any], streamed: Any, collection: str) -> Iterator[str]:
    """The LLM's pieces as ``chat.completion.chunk`` events as they arrive; then the
    "Sources:" lines, the citations on the last chunk, and ``data: [DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        obj = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"  # fmt: skip

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in streamed:
        yield chunk({"content": piece}, None)
    result = streamed.result
    citations = _cited(result)
    sources = _with_sources("", citations)
    if sources:
        yield chunk({"content": sources}, None)
    yield chunk({}, "stop", **_meta(result, citations, collection))
    yield "data: [DONE]\n\n"


@router.post(
    "/openai/v1/chat/completions", responses=errors_doc(), openapi_extra=body_doc(ChatRequest)
)
async def chat_route(request: Request, who: PredictCaller) -> Response:
    """An answer from the collection named by ``model``, with citations (OpenAI format)."""
    return await _chat(request, who)


@router.post("/v1/chat/completions", responses=errors_doc(), openapi_extra=body_doc(ChatRequest))
async def chat_route_v1(request: Request, who: PredictCaller) -> Response:
    """The same as ``/openai/v1/chat/completions``."""
    return await _chat(request, who)
