"""Shared fixtures: a fresh KEIZOKU_HOME per test, the embedding model loaded once, and a
real local HTTP stand-in for an OpenAI-compatible LLM and embedding server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from keizoku.rag.embed import Embedder, get_embedder
from ragsupport import serving


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session (process cache)."""
    return get_embedder()


@pytest.fixture(autouse=True)
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEIZOKU_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in (
        "KEIZOKU_LLM_BASE_URL",
        "KEIZOKU_LLM_MODEL",
        "KEIZOKU_LLM_API_KEY",
        "KEIZOKU_EMBED_MODEL",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write():  # type: ignore[no-untyped-def]
    """``write(path, text)``: create a file (and its folders) and return its path."""
    return _write


# --- a real local HTTP stand-in for an OpenAI-compatible LLM / embedding server -------------


class StandIn:
    """What the stand-in server received, and its base URL (``.../v1``)."""

    def __init__(self) -> None:
        self.base = ""
        self.chat_bodies: list[dict[str, Any]] = []
        self.embed_inputs: list[str] = []
        self.streamed_pieces = 0


def stand_in_vector(text: str, dim: int = 64) -> list[float]:
    """Deterministic: character bigrams hashed into ``dim`` buckets (similar texts, close)."""
    vec = [0.0] * dim
    for i in range(max(1, len(text) - 1)):
        digest = hashlib.sha256(text[i : i + 2].encode()).digest()
        vec[digest[0] % dim] += 1.0
    return vec


class _Handler(BaseHTTPRequestHandler):
    state: StandIn

    def _stream(self, text: str) -> None:
        """The answer as OpenAI streams it: one SSE event per 8 characters, then [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.state.streamed_pieces = 0
        for i in range(0, len(text), 8):
            delta = {"choices": [{"index": 0, "delta": {"content": text[i : i + 8]}}]}
            self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
            self.wfile.flush()
            self.state.streamed_pieces += 1
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if self.path.endswith("/chat/completions"):
            self.state.chat_bodies.append(body)
            # an obedient model: it repeats everything it was given, so any text that
            # reached it would show up in the answer
            seen = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
            if body.get("stream"):
                self._stream(f"[1] {seen}")
                return
            out: dict[str, Any] = {
                "choices": [{"message": {"role": "assistant", "content": f"[1] {seen}"}}]
            }
        elif self.path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self.state.embed_inputs.extend(texts)
            out = {"object": "list", "data": [
                {"object": "embedding", "index": i, "embedding": stand_in_vector(t)}
                for i, t in enumerate(texts)]}  # fmt: skip
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    """A real HTTP server on loopback speaking /v1/chat/completions and /v1/embeddings."""
    state = StandIn()
    handler = type("Handler", (_Handler,), {"state": state})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        state.base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        yield state
