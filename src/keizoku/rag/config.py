"""A collection's config file (``keizoku rag ingest -c FILE``): embeddings and chunking.

YAML, either at the top level or under ``rag:`` (so it can live in keizoku.yaml)::

    embeddings:            # omitted: the bundled MiniLM (English), lexical-only for Japanese
      url: http://localhost:8080/v1   # any OpenAI-compatible /v1/embeddings server
      model: bge-m3
      api_key_env: EMBED_API_KEY      # the key is read from this variable, never stored
      # late_interaction: false     # local model: no token states (vectors only, plain hybrid)
    chunking:
      max_words: 120
      max_chars: 300                  # Japanese sentences count characters
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from keizoku.errors import UserInputError
from keizoku.rag.chunk import ChunkConfig
from keizoku.rag.embed import EmbeddingConfig

__all__ = ["RagConfig", "load_rag_config"]


@dataclass(frozen=True)
class RagConfig:
    embedding: EmbeddingConfig | None = None
    chunking: ChunkConfig | None = None


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserInputError(f"{where} in {path} must be a mapping, not {type(value).__name__}.")
    return value


def load_rag_config(path: str | Path | None) -> RagConfig:
    """Read ``path`` (``None``: defaults); a UserInputError names the bad key and the fix."""
    if path is None:
        return RagConfig()
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"Config file {p} does not exist. Pass a YAML file with -c/--config.")
    try:
        raw = _mapping(yaml.safe_load(p.read_text(encoding="utf-8")), "The file", p)
    except yaml.YAMLError as exc:
        raise UserInputError(f"Config file {p} is not valid YAML: {exc}") from None
    raw = _mapping(raw.get("rag", raw), "'rag'", p)
    unknown = sorted(set(raw) - {"embeddings", "chunking"})
    if unknown:
        raise UserInputError(f"Unknown key(s) {unknown} in {p}. Known: embeddings, chunking.")
    emb_raw = _mapping(raw.get("embeddings"), "'embeddings'", p)
    chunk_raw = _mapping(raw.get("chunking"), "'chunking'", p)
    known = {f.name for f in fields(ChunkConfig)}
    bad = sorted(set(chunk_raw) - known)
    if bad:
        raise UserInputError(f"Unknown chunking key(s) {bad} in {p}. Known: {sorted(known)}.")
    return RagConfig(
        EmbeddingConfig.from_dict(emb_raw) if emb_raw else None,
        ChunkConfig(**chunk_raw).check() if chunk_raw else None,
    )
