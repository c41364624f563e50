"""A minimal client for any OpenAI-compatible chat-completions server (over httpx).

Configured by ``KEIZOKU_LLM_BASE_URL`` (e.g. ``http://localhost:8000/v1``),
``KEIZOKU_LLM_MODEL`` and ``KEIZOKU_LLM_API_KEY``. The key is sent as a Bearer token
and never appears in a log line, an error message or a repr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from keizoku.errors import KeizokuError

__all__ = ["LLMConfig", "LLMError", "chat", "chat_stream"]


class LLMError(KeizokuError):
    """The language-model server failed or answered something unusable (HTTP 502)."""

    code = "llm_unavailable"
    exit_code = 1
    http_status = 502


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    @classmethod
    def from_env(cls) -> LLMConfig | None:
        """The configured server, or None when ``KEIZOKU_LLM_BASE_URL`` is unset."""
        base = os.environ.get("KEIZOKU_LLM_BASE_URL", "").strip()
        if not base:
            return None
        return cls(
            base_url=base.rstrip("/"),
            model=os.environ.get("KEIZOKU_LLM_MODEL", "default"),
            api_key=os.environ.get("KEIZOKU_LLM_API_KEY") or None,
        )


def _request(cfg: LLMConfig, messages: list[dict[str, str]], max_tokens: int, stream: bool) -> Any:
    """(url, headers, body) of a chat-completions request to ``cfg``'s server."""
    headers = {"Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    body: dict[str, Any] = {
        "model": cfg.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
    }  # fmt: skip
    if stream:
        body["stream"] = True
    return f"{cfg.base_url}/chat/completions", headers, body


def _unreachable(cfg: LLMConfig, exc: Exception) -> LLMError:
    return LLMError(
        f"The LLM server at {cfg.base_url} could not be reached ({exc.__class__.__name__}). "
        "Check KEIZOKU_LLM_BASE_URL, or unset it to get extractive answers."
    )


def _refused(cfg: LLMConfig, status: int) -> LLMError:
    return LLMError(
        f"The LLM server at {cfg.base_url} answered HTTP {status}. Check "
        "KEIZOKU_LLM_MODEL and KEIZOKU_LLM_API_KEY."
    )


def _content(cfg: LLMConfig, data: Any) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(
            f"The LLM server at {cfg.base_url} did not return a chat completion "
            "(no choices[0].message.content). Is it OpenAI-compatible?"
        ) from None
    return str(content or "")


def chat(cfg: LLMConfig, messages: list[dict[str, str]], max_tokens: int = 512) -> str:
    """POST ``{base}/chat/completions`` and return the first choice's message content."""
    import httpx

    url, headers, body = _request(cfg, messages, max_tokens, stream=False)
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=cfg.timeout)
    except httpx.HTTPError as exc:
        raise _unreachable(cfg, exc) from None
    if resp.status_code >= 400:
        raise _refused(cfg, resp.status_code)
    try:
        data = resp.json()
    except ValueError:
        data = None
    return _content(cfg, data)


def chat_stream(
    cfg: LLMConfig, messages: list[dict[str, str]], max_tokens: int = 512
) -> Iterator[str]:
    """The answer's text as the server streams it (``"stream": true``, server-sent events).

    A server that ignores ``stream`` and answers one JSON completion yields it whole. The
    connection is opened when the first piece is asked for; errors then are ``LLMError``.
    """
    import httpx

    url, headers, body = _request(cfg, messages, max_tokens, stream=True)
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=cfg.timeout) as resp:
            if resp.status_code >= 400:
                raise _refused(cfg, resp.status_code)
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                resp.read()
                try:
                    data = resp.json()
                except ValueError:
                    data = None
                yield _content(cfg, data)
                return
            for line in resp.iter_lines():
                piece = _delta(line)
                if piece is None:
                    return
                if piece:
                    yield piece
    except httpx.HTTPError as exc:
        raise _unreachable(cfg, exc) from None


def _delta(line: str) -> str | None:
    """The text of one SSE line ('' for none), or None at ``data: [DONE]``."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        choice = json.loads(payload)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    delta = choice.get("delta") or {}
    return str(delta.get("content") or "")
