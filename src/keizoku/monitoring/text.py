"""Drift of text columns: vocabulary shift and, with embeddings on, embedding shift.

A text column is not a level or a number the drift tests can count, so each is judged
through the monitor's own rule (``keizoku.monitoring.drift``) on what can be counted:

* **tokens** (``<column> (tokens)``): the window's tokens, made by the column's own
  tokenizer (``keizoku.features.text``), as a categorical column whose levels are the
  ``TOP_TOKENS`` most frequent training tokens (+ the rest of the training vocabulary as
  ``__other__``) and whose *null* is a token the training vocabulary never held. So the
  top-token distribution is judged by Jensen-Shannon ≥ ``categorical_threshold`` and the
  out-of-vocabulary share by Cohen's h ≥ ``null_threshold``, both with p < ``alpha``.
  The tests count *documents*, not tokens (token counts are scaled to the number of
  texts: tokens of one text are not independent draws), and the training OOV share is
  the leave-one-text-out share (tokens that occur in one training text only), so text
  like the training text is not flagged for holding a few new words.
* **embedding** (``<column> (embedding)``, only for ``embeddings: true`` columns): each
  text's cosine similarity to the training texts' mean MiniLM embedding, a numeric column
  judged by Wasserstein/std ≥ ``numeric_threshold``.

The sketches are saved with each version as ``text_reference.json`` (written only when
the schema has text features), the window's texts are a seeded sample of at most
``SAMPLE_TEXTS`` rows of the log or the data file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel

from keizoku.errors import NotFoundError
from keizoku.features.text import TextTokenizer
from keizoku.monitoring.drift import (
    DriftConfig,
    FeatureDrift,
    compare_categorical,
    compare_numeric,
    numeric_counts,
)
from keizoku.monitoring.reference import OTHER, FeatureRef, numeric_ref

if TYPE_CHECKING:
    from keizoku.training.context import TrainingContext

__all__ = [
    "TextColumnRef",
    "TextReference",
    "build_text_reference",
    "load_text_reference",
    "text_drift",
    "text_drift_of",
    "text_reference_artifact",
]

TEXT_REFERENCE_FILE = "text_reference.json"
TOP_TOKENS = 50
VOCABULARY = 20_000  # most frequent training tokens kept as the vocabulary
SAMPLE_TEXTS = 5_000
TOKENS, EMBEDDING = "tokens", "embedding"


class TextColumnRef(BaseModel):
    """One text column's sketch."""

    n: int  # training texts (nulls included)
    null_rate: float
    tokenizer: str  # the TextTokenizer's Japanese analyser ("sudachi" | "bigrams")
    vocabulary: list[str]
    oov: float  # leave-one-text-out share of tokens outside the vocabulary
    top: dict[str, float]  # share of all tokens, the TOP_TOKENS most frequent
    other: float  # share of the other in-vocabulary tokens
    embed: str | None = None  # the MiniLM model of an ``embeddings: true`` column
    centroid: list[float] | None = None
    similarity: FeatureRef | None = None  # cosine similarity to the centroid, per text


class TextReference(BaseModel):
    columns: dict[str, TextColumnRef]


def _texts(values: pd.Series | list[Any]) -> tuple[list[str], int]:
    """(non-empty texts, nulls) of ``values``."""
    out, nulls = [], 0
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or not str(v).strip():
            nulls += 1
        else:
            out.append(str(v))
    return out, nulls


def _column_ref(values: pd.Series, embed: str | None) -> TextColumnRef:
    texts, nulls = _texts(values)
    tok = TextTokenizer()
    counts: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    for t in texts:
        tokens = tok(t)
        counts.update(tokens)
        docs.update(set(tokens))
    total = sum(counts.values()) or 1
    vocab = [w for w, _ in counts.most_common(VOCABULARY)]
    kept = set(vocab)
    # a token occurrence is unseen when its text is left out: its token is in no other text
    unseen = sum(c for w, c in counts.items() if docs[w] == 1 or w not in kept)
    top = dict(counts.most_common(TOP_TOKENS))
    other = sum(counts[w] for w in vocab) - sum(top.values())
    ref = TextColumnRef(
        n=len(values),
        null_rate=nulls / len(values) if len(values) else 0.0,
        tokenizer=tok.japanese,
        vocabulary=vocab,
        oov=unseen / total,
        top={w: c / total for w, c in top.items()},
        other=other / total,
    )
    if embed and texts:
        from keizoku.features.textcol import embed_texts

        emb = embed_texts(embed, texts).astype(np.float64)
        centroid = emb.mean(axis=0)
        ref.embed, ref.centroid = embed, centroid.tolist()
        ref.similarity = numeric_ref(_similarity(emb, centroid))
    return ref


def _similarity(emb: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(centroid)) or 1.0
    return np.asarray(emb @ (centroid / norm), dtype=float)


def build_text_reference(frame: pd.DataFrame, schema: Any) -> TextReference | None:
    """Sketches of ``schema``'s text features in ``frame`` (None when it has none)."""
    from keizoku.features.embed import resolve_model_name

    cols = [c for c in schema.features if c.kind == "text" and c.name in frame.columns]
    if not cols:
        return None
    return TextReference(
        columns={
            c.name: _column_ref(frame[c.name], resolve_model_name(None) if c.embeddings else None)
            for c in cols
        }
    )


def text_reference_artifact(ctx: TrainingContext, folder: Path) -> dict[str, Path]:
    """Artifact builder: ``text_reference.json`` when the schema has text features."""
    ref = build_text_reference(ctx.data.frame, ctx.schema)
    if ref is None:
        return {}
    path = Path(folder) / TEXT_REFERENCE_FILE
    path.write_text(ref.model_dump_json())
    return {"text_reference": path}


def load_text_reference(ref: str) -> TextReference | None:
    """The text sketches of version ``ref`` (None: no text feature, or an older version)."""
    from keizoku.registry.models import version_artifact

    try:
        path = version_artifact(ref, TEXT_REFERENCE_FILE)
    except NotFoundError:
        return None
    return TextReference.model_validate(json.loads(path.read_text()))


def text_drift_of(
    name: str, ref: TextColumnRef, values: pd.Series | list[Any], cfg: DriftConfig
) -> list[FeatureDrift]:
    """The verdicts of text column ``name``: tokens, and embedding when the column has one."""
    texts, nulls = _texts(values)
    tok = TextTokenizer(ref.tokenizer)
    kept = set(ref.vocabulary)
    top = set(ref.top)
    counts: Counter[str | None] = Counter()
    for t in texts:
        for w in tok(t):
            counts[w if w in top else OTHER if w in kept else None] += 1
    n_docs = len(texts)
    total = sum(counts.values())
    scale = n_docs / total if total else 0.0  # the tests count texts (see the docstring)
    sketch = FeatureRef(
        kind="categorical", n=max(int(ref.n * (1 - ref.null_rate)), 1), null_rate=ref.oov,
        frequencies={w: s / (1 - ref.oov) for w, s in ref.top.items()} if ref.oov < 1 else {},
        other=ref.other / (1 - ref.oov) if ref.oov < 1 else 0.0,
    )  # fmt: skip
    scaled = cast(dict[str | None, int], {k: v * scale for k, v in counts.items()})
    verdict = compare_categorical(f"{name} ({TOKENS})", sketch, scaled, cfg)
    verdict.kind = "text"  # levels and the categorical threshold, as a category's
    verdict.n = n_docs
    verdict.reason = verdict.reason.replace("null rate", "out-of-vocabulary share")
    verdict.labels = [lab if lab != "null" else "<out of vocabulary>" for lab in verdict.labels]
    out = [verdict]
    if ref.embed and ref.centroid is not None and ref.similarity is not None:
        from keizoku.features.textcol import embed_texts

        emb = embed_texts(ref.embed, texts).astype(np.float64)
        sim = _similarity(emb, np.asarray(ref.centroid)) if texts else np.zeros(0)
        values_ = np.concatenate([sim, np.full(nulls, np.nan)])
        moved = compare_numeric(
            f"{name} ({EMBEDDING})", ref.similarity, numeric_counts(values_, ref.similarity), cfg
        )
        out.append(moved)  # kind "numeric": bins and the numeric threshold in the report
    return out


def text_drift(con: Any, source: str, texts: TextReference, cfg: DriftConfig) -> list[FeatureDrift]:
    """Verdicts of every text column of ``texts`` over the window ``source`` (DuckDB SELECT
    with ``f__<column>`` columns: the prediction log, or the monitored data file)."""
    from keizoku.monitoring.log import FEATURE_PREFIX

    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM ({source})").fetchall()}
    out: list[FeatureDrift] = []
    for name, ref in texts.columns.items():
        col = FEATURE_PREFIX + name
        if col not in present:
            continue
        quoted = '"' + col.replace('"', '""') + '"'
        rows = con.execute(
            f"SELECT {quoted} FROM ({source}) "
            f"USING SAMPLE reservoir({SAMPLE_TEXTS} ROWS) REPEATABLE (0)"
        ).fetchall()
        out += text_drift_of(name, ref, [r[0] for r in rows], cfg)
    return out
