"""The RAG side of the one English + Japanese tokenizer (decision 0016).

The tokenizer lives in :mod:`keizoku.features.text` (layer 1), where the table encoder's
TF-IDF of text columns uses it too; retrieval imports it from there, unchanged.
"""

from __future__ import annotations

from keizoku.features.text import STOPWORDS as STOPWORDS
from keizoku.features.text import detect_language as detect_language
from keizoku.features.text import has_japanese as has_japanese
from keizoku.features.text import japanese_analyzer as japanese_analyzer
from keizoku.features.text import split_sentences as split_sentences
from keizoku.features.text import stem as stem
from keizoku.features.text import tokenize as tokenize
