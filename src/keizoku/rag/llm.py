"""A minimal client for any OpenAI-compatible chat-completions server (over httpx).

Configured by ``KEIZOKU_LLM_BASE_URL`` (e.g. ``http://localhost:8000/v1``),
``KEIZOKU_LLM_MODEL`` and ``KEIZOKU_LLM_API_KEY``. The key is sent as a Bearer token
and never appears in a log line, an error message or a repr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from keizoku.errors import KeizokuError

__all__ = ["LLMConfig", "LLMError", "chat"]


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


def chat(cfg: LLMConfig, messages: list[dict[str, str]], max_tokens: int = 512) -> str:
    """POST ``{base}/chat/completions`` and return the first choice's message content."""
    import httpx

    headers = {"Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    body: dict[str, Any] = {
        "model": cfg.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
    }  # fmt: skip
    url = f"{cfg.base_url}/chat/completions"
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=cfg.timeout)
    except httpx.HTTPError as exc:
        raise LLMError(
            f"The LLM server at {cfg.base_url} could not be reached ({exc.__class__.__name__}). "
            "Check KEIZOKU_LLM_BASE_URL, or unset it to get extractive answers."
        ) from None
    if resp.status_code >= 400:
        raise LLMError(
            f"The LLM server at {cfg.base_url} answered HTTP {resp.status_code}. Check "
            "KEIZOKU_LLM_MODEL and KEIZOKU_LLM_API_KEY."
        )
    try:
        content = resp.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(
            f"The LLM server at {cfg.base_url} did not return a chat completion "
            "(no choices[0].message.content). Is it OpenAI-compatible?"
        ) from None
    return str(content or "")
