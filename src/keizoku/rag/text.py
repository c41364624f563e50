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

Each collection records its ``Analyzer`` (which English stemmer its Latin words get), so a
query is always tokenized like the index it searches (decision 0030).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from keizoku.errors import UserInputError
from keizoku.features.text import ENGLISH_STEMMERS
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
    "Analyzer",
    "DEFAULT_ANALYZER",
    "LEGACY_ANALYZER",
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


@dataclass(frozen=True)
class Analyzer:
    """How a collection's chunks and queries become BM25 tokens; recorded with the collection.

    ``english``: the stemmer of its Latin-script words, in English chunks and inside Japanese
    ones alike: ``porter2`` (Snowball English, new collections since decision 0030) or
    ``porter`` (Porter 1980: collections made before, until re-ingested with ``--rebuild``).
    Kana/kanji are analysed the same way under either.
    """

    english: str = "porter2"

    def index_tokens(self, text: str) -> list[str]:
        return tokenize(text, self.english)

    def query_tokens(self, text: str) -> list[str]:
        return tokenize_query(text, self.english)

    def to_json(self) -> str:
        return json.dumps({"english": self.english})

    @classmethod
    def from_json(cls, raw: str, collection: str) -> Analyzer:
        """The analyzer stored as ``raw`` in ``collection``'s meta; refused if unknown here."""
        english = json.loads(raw).get("english")
        if english not in ENGLISH_STEMMERS:
            raise UserInputError(
                f"Collection {collection!r} was indexed with English stemmer {english!r}, "
                f"which this keizoku does not know (it has {', '.join(ENGLISH_STEMMERS)}). "
                f"Upgrade keizoku, or re-ingest with 'keizoku rag ingest PATH --collection "
                f"{collection} --rebuild'."
            )
        return cls(english)


DEFAULT_ANALYZER = Analyzer("porter2")  # chosen on XQuAD's dev half (decision 0030)
LEGACY_ANALYZER = Analyzer("porter")  # a collection with no recorded analyzer
