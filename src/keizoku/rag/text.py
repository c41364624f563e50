"""The RAG side of the one English + Japanese tokenizer (decision 0016).

The tokenizer lives in :mod:`keizoku.features.text` (layer 1), where the table encoder's
TF-IDF of text columns uses it too; retrieval imports it from there, unchanged.
"""

from __future__ import annotations

from keizoku.features.text import (
    STOPWORDS,
    detect_language,
    has_japanese,
    japanese_analyzer,
    split_sentences,
    stem,
    tokenize,
)

__all__ = [
    "split_sentences",
    "stem",
    "tokenize",
    "detect_language",
    "has_japanese",
    "japanese_analyzer",
    "STOPWORDS",
]
