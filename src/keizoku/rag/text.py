"""Retrieval's tokenizer: the one English + Japanese tokenizer, plus two retrieval-only steps.

The tokenizer lives in :mod:`keizoku.features.text` (layer 1), where the table encoder's
TF-IDF of text columns uses it too. Retrieval adds, for text with kana/kanji only
(decision 0029; English is tokenized exactly as there):

* SudachiPy's split mode C beside mode A: a compound (``国際連合``) is one token as well
  as its parts (``国際``, ``連合``), so a question that names the compound matches it
  more strongly than one that only shares a part;
* on the query side, interrogatives (``何``, ``誰``, ``どこ`` ... and Sudachi's pronouns)
  are dropped: they ask for the answer and never occur in the passage that holds it.
"""

from __future__ import annotations

import threading
from typing import Any

from keizoku.features import text as _ft
from keizoku.features.text import STOPWORDS as STOPWORDS
from keizoku.features.text import detect_language as detect_language
from keizoku.features.text import has_japanese as has_japanese
from keizoku.features.text import japanese_analyzer as japanese_analyzer
from keizoku.features.text import split_sentences as split_sentences
from keizoku.features.text import stem as stem

__all__ = [
    "STOPWORDS",
    "detect_language",
    "has_japanese",
    "japanese_analyzer",
    "split_sentences",
    "stem",
    "tokenize",
    "tokenize_query",
]

# Japanese question words, in Sudachi's normalised forms and common spellings
INTERROGATIVES = frozenset(
    "何 なに なん 誰 だれ 何処 どこ 何時 いつ 何れ どれ どの 何故 なぜ 如何 どう いくつ 幾つ "
    "どんな どちら どっち どのよう".split()
)
_LOCAL = threading.local()  # SudachiPy tokenizers per thread (they are not thread-safe)


def tokenize(text: str) -> list[str]:
    """Index tokens: English as :func:`keizoku.features.text.tokenize`; Japanese with mode C too."""
    return _tokenize(text, query=False)


def tokenize_query(text: str) -> list[str]:
    """Query tokens: as :func:`tokenize`, less Japanese interrogatives."""
    return _tokenize(text, query=True)


def _tokenize(text: str, query: bool) -> list[str]:
    if not has_japanese(text) or japanese_analyzer() is None:
        return _ft.tokenize(text)  # English, or Japanese as bigrams only without SudachiPy

    def analyse(norm: str) -> list[str]:  # NFKC + lowercase text, modes A then C
        return _analyse(norm, "A", query) + _analyse(norm, "C", query, latin=False)

    return _ft._tokenize_ja(text, analyse)


def _tokenizer(mode: str) -> Any:
    key = f"sudachi_{mode}"
    tok = getattr(_LOCAL, key, None)
    if tok is None:
        from sudachipy import SplitMode

        tok = _ft._dictionary().tokenizer(mode=getattr(SplitMode, mode))
        setattr(_LOCAL, key, tok)
    return tok


def _analyse(text: str, mode: str, query: bool, latin: bool = True) -> list[str]:
    """Normalised forms in split ``mode`` (particles, auxiliaries, symbols dropped)."""
    tok = _tokenizer(mode)
    out: list[str] = []
    for line in text.splitlines():
        for lo in range(0, len(line), _ft._PIECE):
            for m in tok.tokenize(line[lo : lo + _ft._PIECE]):
                pos = m.part_of_speech()
                if pos[0] in _ft._DROP_POS:
                    continue
                surface = m.surface()
                if not has_japanese(surface):
                    if latin:  # Latin words and numbers once, the English way
                        out.extend(_ft._tokenize_en(surface))
                    continue
                form = m.normalized_form()
                if query and (pos[1] == "代名詞" or form in INTERROGATIVES or surface in
                              INTERROGATIVES):  # fmt: skip
                    continue
                out.append(form)
    return out
