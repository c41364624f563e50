"""A text column's features: TF-IDF over keizoku's tokens, and optionally MiniLM embeddings.

* **TF-IDF** (always): scikit-learn's ``TfidfVectorizer`` with ``analyzer`` set to a
  :class:`~keizoku.features.text.TextTokenizer` (English words stemmed; Japanese by
  SudachiPy's normalised forms plus character bigrams, or bigrams alone). The tokenizer is
  chosen when the column is fitted and pickled inside the vectorizer, so training, batch
  ``predict`` and the server's one-row path (:func:`encode_one`) make the same tokens.
* **Embeddings** (``embeddings: true`` on the column in ``schema.yaml``): the packaged
  all-MiniLM-L6-v2 sentence embedding (384 numbers, L2-normalised) as a second view. The
  fitted state records the model's name, never the model; each text is encoded on its own
  (no padding inside a batch), so a text gets the same numbers alone or in a file.

Encoders fitted before this module (the default word analyzer) keep working unchanged.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd

from keizoku.features.text import TextTokenizer

__all__ = ["fit_text", "transform_text", "encode_one", "embed_texts", "load_models"]

EMB = "emb_"  # feature names of the embedding view: <column>__emb_<j>
_CACHE_ROWS = 50_000  # texts whose embedding is kept per process (a search encodes each fold)
_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def fit_text(
    name: str, s: pd.Series, width: int, *, embeddings: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """(state, output feature names) of text column ``name`` fitted on ``s``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = s.fillna("").astype(str)
    tok = TextTokenizer()
    vec = TfidfVectorizer(
        analyzer=tok, max_features=width, min_df=2, sublinear_tf=True, dtype=np.float64
    )
    try:
        vec.fit(text)
    except ValueError:  # no token in two documents: keep what there is (or one "empty" token)
        vec = TfidfVectorizer(analyzer=tok, max_features=width, dtype=np.float64)
        vec.fit(text.where(text.map(lambda t: bool(tok(t))), "empty"))
    names = [f"{name}__{w}" for w in vec.get_feature_names_out().tolist()]
    state: dict[str, Any] = {"vectorizer": vec, "tokenizer": tok.japanese}
    if embeddings:
        from keizoku.features.embed import get_embedder, resolve_model_name

        model = resolve_model_name(None)
        state["embed"] = model
        names += [f"{name}__{EMB}{j}" for j in range(get_embedder(model).dim)]
    return state, names


def transform_text(state: dict[str, Any], s: pd.Series) -> np.ndarray:
    """The column's features for every row of ``s`` (nulls as the empty text)."""
    text = s.fillna("").astype(str)
    out = np.asarray(state["vectorizer"].transform(text).todense())
    if state.get("embed"):
        out = np.hstack([out, embed_texts(state["embed"], text.tolist()).astype(np.float64)])
    return out


def encode_one(state: dict[str, Any], text: str) -> list[float]:
    """One text's features, equal to :func:`transform_text` at a fraction of its cost."""
    row = _tfidf_one(state, text)
    if state.get("embed"):
        row.extend(embed_texts(state["embed"], [text])[0].astype(np.float64).tolist())
    return row


def load_models(states: list[dict[str, Any]]) -> None:
    """Load the embedding model of every column state that has one (once per process)."""
    from keizoku.features.embed import get_embedder

    for name in {st["embed"] for st in states if st.get("embed")}:
        get_embedder(name)


def embed_texts(model: str, texts: list[str]) -> np.ndarray:
    """MiniLM rows of ``texts`` (each encoded alone; recent ones cached per process)."""
    from keizoku.features.embed import get_embedder

    embedder = get_embedder(model)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    todo: list[int] = []
    with _CACHE_LOCK:
        for i, t in enumerate(texts):
            hit = _CACHE.get((model, t))
            if hit is None:
                todo.append(i)
            else:
                _CACHE.move_to_end((model, t))
                out[i] = hit
    if todo:
        out[todo] = embedder.encode_each([texts[i] for i in todo])
    with _CACHE_LOCK:
        for i in todo:
            _CACHE[(model, texts[i])] = out[i]
        while len(_CACHE) > _CACHE_ROWS:
            _CACHE.popitem(last=False)
    return out


def _tfidf_one(state: dict[str, Any], text: str) -> list[float]:
    """TF-IDF of one document, equal to ``TfidfVectorizer.transform``."""
    vec = state["vectorizer"]
    analyzer = state.get("_analyzer")
    if analyzer is None:
        analyzer = state["_analyzer"] = vec.build_analyzer()
    vocab, idf = vec.vocabulary_, vec.idf_
    counts: dict[int, int] = {}
    for token in analyzer(text):
        j = vocab.get(token)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    out = [0.0] * len(idf)
    for j, c in counts.items():
        tf = 1.0 + math.log(c) if vec.sublinear_tf else float(c)
        out[j] = tf * idf[j]
    norm = math.sqrt(sum(v * v for v in out))
    if norm > 0:
        out = [v / norm for v in out]
    return out
