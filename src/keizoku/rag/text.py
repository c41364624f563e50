"""Retrieval's tokenizer: the one English + Japanese tokenizer, plus two retrieval-only steps.

Every tokenizer lives in :mod:`keizoku.features.text` (layer 1), where the table encoder's
TF-IDF of text columns uses it too; this module re-exports retrieval's two:
``tokenize`` (``search_tokens``) and ``tokenize_query`` (``query_tokens``). They add, for
text with kana/kanji only (decision 0029; English is tokenized exactly as for columns):

* SudachiPy's split mode C beside mode A: a compound (``国際連合``) is one token as well
  as its parts (``国際``, ``連合``), so a question that names the compound matches it
  more strongly than one that only shares a part;
* on the query side, interrogatives (``何``, ``誰``, ``どこ`` ... and Sudachi's pronouns)
  are dropped: they ask for the answer and never occur in the passage that holds it.
"""

from __future__ import annotations

from keizoku.features.text import INTERROGATIVES as INTERROGATIVES
from keizoku.features.text import STOPWORDS as STOPWORDS
from keizoku.features.text import detect_language as detect_language
from keizoku.features.text import has_japanese as has_japanese
from keizoku.features.text import japanese_analyzer as japanese_analyzer
from keizoku.features.text import query_tokens as tokenize_query
from keizoku.features.text import search_tokens as tokenize
from keizoku.features.text import split_sentences as split_sentences
from keizoku.features.text import stem as stem

__all__ = [
    "INTERROGATIVES",
    "STOPWORDS",
    "detect_language",
    "has_japanese",
    "japanese_analyzer",
    "split_sentences",
    "stem",
    "tokenize",
    "tokenize_query",
]
