"""The one English + Japanese tokenizer: BM25 (RAG) and the TF-IDF of text columns use it.

Also language detection and sentence splitting.

English: lowercase words, a short stopword list, Porter stemming (retrieval may choose
Snowball's English stemmer, "porter2", per collection: ``english_stemmer``). Japanese (any run of
kana or kanji): NFKC (full-width/half-width folding), then SudachiPy's normalised forms
(split mode A, particles, auxiliaries and symbols dropped) *plus* the character bigrams
of the run; without SudachiPy installed only the bigrams (docs/decisions/0016). A mixed
text gets both: its Latin words the English way, its Japanese runs the Japanese way, so
an English text is tokenized exactly as before.

``TextTokenizer`` is the same function as a picklable object for the table encoder: the
Japanese analyser in use (SudachiPy or bigrams only) is chosen when the encoder is fitted
and kept in it, so training, ``predict`` and the server produce the same tokens, and a
model fitted with SudachiPy refuses to score Japanese text where it is not installed
instead of silently making other features (docs/text.md).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = [
    "TextTokenizer",
    "split_sentences",
    "stem",
    "tokenize",
    "search_tokens",
    "query_tokens",
    "INTERROGATIVES",
    "detect_language",
    "has_japanese",
    "japanese_analyzer",
    "japanese_chars",
    "STOPWORDS",
    "ENGLISH_STEMMERS",
    "english_stemmer",
    "porter2",
]

# Lucene/bm25s English stopword list (short on purpose: questions keep their content words).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_WORD = re.compile(r"\w\w+|\d", re.UNICODE)
_ABBREV = {"e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "prof", "vs", "st", "no", "fig", "inc"}
_SENT_END = re.compile(r"[.!?][\"')\]]*\s+")


# kana, CJK ideographs (and extension A, compatibility), the iteration mark and the long-vowel mark
_JA_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff\uff66-\uff9f々〆ー"
_JA_RUN = re.compile(f"[{_JA_CHARS}]+")
_JA_ONE = re.compile(f"[{_JA_CHARS}]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
# a Japanese sentence ends at 。！？ (or ! ? after a Japanese character), closing brackets included
_JA_END = re.compile(f"(?:[。！？]|(?<=[{_JA_CHARS}])[!?])[」』）)】〕\"']*")


def has_japanese(text: str) -> bool:
    return _JA_ONE.search(text) is not None


def japanese_chars(text: str) -> int:
    """How many kana/kanji ``text`` holds."""
    return len(_JA_ONE.findall(text))


def detect_language(text: str) -> str:
    """``ja`` when kana/kanji are at least a fifth of the letters, else ``en`` (script-based)."""
    ja = len(_JA_ONE.findall(text))
    if ja == 0:
        return "en"
    latin = len(_LATIN.findall(text))
    return "ja" if ja >= 0.2 * (ja + latin) else "en"


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: Japanese ones end at 。！？, English ones as in ``_split_en``."""
    if not has_japanese(text):
        return _split_en(text)
    out: list[str] = []
    start = 0
    for match in _JA_END.finditer(text):
        out.extend(_split_en(text[start : match.end()]))
        start = match.end()
    out.extend(_split_en(text[start:]))
    return out


def _split_en(text: str) -> list[str]:
    """Split ``text`` on ``.!?`` + space + capital, keeping abbreviations and decimals whole."""
    out: list[str] = []
    start = 0
    for match in _SENT_END.finditer(text):
        end = match.end()
        head = text[start : match.start()].rstrip()
        last = head.rsplit(None, 1)[-1].lower() if head.split() else ""
        nxt = text[end : end + 1]
        if last.rstrip(".") in _ABBREV or (len(last) == 1 and last.isalpha()):
            continue
        if nxt and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'(["):
            continue
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


Stemmer = Callable[[str], str]


def _tokenize_en(text: str, stem_: Stemmer | None = None) -> list[str]:
    stem_ = stem_ or stem
    return [stem_(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def tokenize(text: str) -> list[str]:
    """The BM25 vocabulary of ``text``: English words stemmed, Japanese analysed.

    With kana/kanji in ``text``: NFKC and lowercase, then the analyser's normalised forms
    (Latin words among them the English way) and ``#``-prefixed character bigrams of every
    word run that holds kana/kanji (a single character stands for itself).
    """
    if not has_japanese(text):
        return _tokenize_en(text)
    return _tokenize_ja(text, japanese_analyzer())


def _tokenize_ja(
    text: str,
    analyse: Callable[[str], list[str]] | None,
    bigrams: bool = True,
    stem_: Stemmer | None = None,
) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    out = analyse(text) if analyse is not None else _tokenize_en(_JA_RUN.sub(" ", text), stem_)
    if not bigrams:
        return out
    for run in _WORD.findall(text):
        if has_japanese(run):
            if len(run) == 1:
                out.append("#" + run)
            out.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
    return out


def _japanese_bigrams(tokens: list[str]) -> list[str]:
    """``tokens`` less the bigrams that hold no kana/kanji (``#19`` of an order number)."""
    return [t for t in tokens if not t.startswith("#") or has_japanese(t)]


class TextTokenizer:
    """``tokenize`` for a text column, the Japanese analyser fixed at creation.

    ``"sudachi"``: English words as ``tokenize``; Japanese as SudachiPy's normalised forms
    alone. ``"bigrams"`` (no SudachiPy): English words, and the kana/kanji character
    bigrams. Retrieval keeps both forms and bigrams for recall; a model's vocabulary is a
    few hundred most frequent tokens, and bigrams of common kana (``#です``, ``#ます``)
    crowd the words out of it (docs/decisions/0027-text-columns.md).
    """

    def __init__(self, japanese: str | None = None) -> None:
        if japanese is None:
            japanese = "sudachi" if japanese_analyzer() is not None else "bigrams"
        if japanese not in ("sudachi", "bigrams"):
            raise ValueError(f"japanese={japanese!r}: use 'sudachi' or 'bigrams'")
        self.japanese = japanese

    def __call__(self, text: str) -> list[str]:
        return list(_column_tokens(self.japanese, text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextTokenizer) and other.japanese == self.japanese

    def __hash__(self) -> int:
        return hash(self.japanese)

    def __repr__(self) -> str:
        return f"TextTokenizer(japanese={self.japanese!r})"


# A train tokenizes each text about twenty times (every fold's and the refit's encoder, the
# learning curve's five, permutation importance's shuffles of the other columns); the tokens
# of a text depend only on it and the analyser, which is fixed for the process.
COLUMN_TOKENS_KEPT = 20_000


@lru_cache(maxsize=COLUMN_TOKENS_KEPT)
def _column_tokens(japanese: str, text: str) -> tuple[str, ...]:
    """``TextTokenizer(japanese)(text)``, kept for the most recent texts of the process."""
    if not has_japanese(text):
        return tuple(_tokenize_en(text))
    if japanese == "bigrams":
        return tuple(_japanese_bigrams(_tokenize_ja(text, None)))
    analyse = japanese_analyzer()
    if analyse is None:
        from keizoku.errors import MissingExtraError

        raise MissingExtraError(
            "This model's text columns were tokenised with SudachiPy, which is not installed "
            "here, so Japanese text cannot be encoded as in training. Install it: "
            "pip install 'keizoku[text]'."
        )
    return tuple(_tokenize_ja(text, analyse, bigrams=False))


# --- Japanese morphological analysis (SudachiPy, optional) -----------------------------------

_DROP_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白"})
_DICT: list[Any] = []  # [sudachipy.Dictionary or None], loaded once
_DICT_LOCK = threading.Lock()
_LOCAL = threading.local()  # one SudachiPy tokenizer per thread (they are not thread-safe)


def _dictionary() -> Any:
    with _DICT_LOCK:
        if not _DICT:
            try:
                from sudachipy import Dictionary

                _DICT.append(Dictionary(dict="core"))
            except Exception:  # noqa: BLE001 - not installed, or no dictionary: bigrams only
                _DICT.append(None)
        return _DICT[0]


def japanese_analyzer() -> Callable[[str], list[str]] | None:
    """``analyse(run) -> tokens`` with SudachiPy when installed, else ``None`` (bigrams only)."""
    if _dictionary() is None:
        return None
    return _analyse


_PIECE = 4000  # characters per SudachiPy call (it refuses inputs past ~49 kB)


def _sudachi(mode: str) -> Any:
    """This thread's SudachiPy tokenizer in split ``mode`` ("A" fine, "C" compounds)."""
    key = f"sudachi_{mode}"
    tok = getattr(_LOCAL, key, None)
    if tok is None:
        from sudachipy import SplitMode

        tok = _dictionary().tokenizer(mode=getattr(SplitMode, mode))
        setattr(_LOCAL, key, tok)
    return tok


def _analyse(
    text: str,
    mode: str = "A",
    query: bool = False,
    latin: bool = True,
    stem_: Stemmer | None = None,
) -> list[str]:
    """Normalised forms in split ``mode`` (particles, auxiliaries, symbols dropped); Latin
    words and numbers the English way (once: ``latin``; stemmed by ``stem_``, default Porter);
    with ``query``, interrogatives out."""
    tok = _sudachi(mode)
    out: list[str] = []
    for line in text.splitlines():
        for lo in range(0, len(line), _PIECE):
            for m in tok.tokenize(line[lo : lo + _PIECE]):
                pos = m.part_of_speech()
                if pos[0] in _DROP_POS:
                    continue
                surface = m.surface()
                if not has_japanese(surface):  # no Sudachi spelling changes for Latin words
                    if latin:
                        out.extend(_tokenize_en(surface, stem_))
                    continue
                form = m.normalized_form()
                if query and (pos[1] == "代名詞" or form in INTERROGATIVES or surface in
                              INTERROGATIVES):  # fmt: skip
                    continue
                out.append(form)
    return out


# --- retrieval's two extra steps (decision 0029), for text with kana/kanji only -------------

# Japanese question words, in Sudachi's normalised forms and common spellings
INTERROGATIVES = frozenset(
    "何 なに なん 誰 だれ 何処 どこ 何時 いつ 何れ どれ どの 何故 なぜ 如何 どう いくつ 幾つ "
    "どんな どちら どっち どのよう".split()
)


def search_tokens(text: str, english: str = "porter") -> list[str]:
    """Retrieval's index tokens: :func:`tokenize` (Latin words stemmed by the ``english``
    stemmer), plus SudachiPy's split mode C beside mode A for Japanese, so a compound
    (``国際連合``) is one token as well as its parts."""
    return _search_tokens(text, False, english_stemmer(english))


def query_tokens(text: str, english: str = "porter") -> list[str]:
    """Retrieval's query tokens: :func:`search_tokens` less Japanese interrogatives
    (``何``, ``誰``, ``どこ`` …: they ask for the answer and never occur in its passage)."""
    return _search_tokens(text, True, english_stemmer(english))


def _search_tokens(text: str, query: bool, stem_: Stemmer) -> list[str]:
    if not has_japanese(text):
        return _tokenize_en(text, stem_)
    if japanese_analyzer() is None:  # bigrams only without SudachiPy
        return _tokenize_ja(text, None, stem_=stem_)

    def analyse(norm: str) -> list[str]:  # NFKC + lowercase text, modes A then C
        return _analyse(norm, "A", query, stem_=stem_) + _analyse(norm, "C", query, latin=False)

    return _tokenize_ja(text, analyse)


# --- Porter (1980) stemmer -------------------------------------------------------------------

_VOWELS = frozenset("aeiou")


def _is_cons(word: str, i: int) -> bool:
    ch = word[i]
    if ch in _VOWELS:
        return False
    if ch == "y":
        return i == 0 or not _is_cons(word, i - 1)
    return True


def _measure(stem_: str) -> int:
    forms = "".join("c" if _is_cons(stem_, i) else "v" for i in range(len(stem_)))
    return len(re.findall("vc", re.sub(r"(.)\1+", r"\1", forms)))


def _has_vowel(stem_: str) -> bool:
    return any(not _is_cons(stem_, i) for i in range(len(stem_)))


def _double_cons(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_cons(word, len(word) - 1)


def _cvc(word: str) -> bool:
    if len(word) < 3:
        return False
    return (
        _is_cons(word, len(word) - 3)
        and not _is_cons(word, len(word) - 2)
        and _is_cons(word, len(word) - 1)
        and word[-1] not in "wxy"
    )


def _replace(word: str, rules: tuple[tuple[str, str], ...], min_m: int) -> str:
    for suffix, repl in rules:
        if word.endswith(suffix):
            base = word[: len(word) - len(suffix)]
            return base + repl if _measure(base) > min_m else word
    return word


_STEP2 = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"),
    ("izer", "ize"), ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"),
    ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"), ("ator", "ate"), ("alism", "al"),
    ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"),
    ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
)  # fmt: skip
_STEP3 = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"),
    ("ful", ""), ("ness", ""),
)  # fmt: skip
_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
    "ou", "ism", "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip


def _step1(word: str) -> str:
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                return word + "e"
            if _double_cons(word) and word[-1] not in "lsz":
                return word[:-1]
            if _measure(word) == 1 and _cvc(word):
                return word + "e"
            return word
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    return word


def _step4(word: str) -> str:
    for suffix in sorted(_STEP4, key=len, reverse=True):
        if word.endswith(suffix):
            base = word[: -len(suffix)]
            if suffix == "ion" and not base.endswith(("s", "t")):
                return word
            return base if _measure(base) > 1 else word
    return word


def _step5(word: str) -> str:
    if word.endswith("e"):
        base = word[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            word = base
    if _measure(word) > 1 and _double_cons(word) and word.endswith("l"):
        word = word[:-1]
    return word


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Porter-stem one lowercase word (words of 2 letters or fewer, and numbers, are kept)."""
    if len(word) <= 2 or not word.isalpha():
        return word
    word = _step1(word)
    word = _replace(word, _STEP2, 0)
    word = _replace(word, _STEP3, 0)
    return _step5(_step4(word))


# --- Snowball English ("Porter2"), retrieval's stemmer since decision 0030 -------------------

# the English stemmers a collection can record: "porter" (above: the table encoder's, and
# collections made before decision 0030), "porter2" (Snowball English, snowballstemmer)
ENGLISH_STEMMERS = ("porter", "porter2")
_SNOWBALL = threading.local()  # one Snowball stemmer per thread (they keep state)


def english_stemmer(name: str) -> Stemmer:
    """The stemmer called ``name`` (one of ``ENGLISH_STEMMERS``); ``porter2`` needs
    snowballstemmer (the ``rag`` extra) and says so when it is missing."""
    if name == "porter":
        return stem
    if name == "porter2":
        _snowball()
        return porter2
    raise ValueError(f"English stemmer {name!r} is unknown: use one of {ENGLISH_STEMMERS}")


def _snowball() -> Any:
    tok = getattr(_SNOWBALL, "stemmer", None)
    if tok is None:
        from keizoku.errors import require_extra

        tok = require_extra("snowballstemmer", "rag").stemmer("english")
        _SNOWBALL.stemmer = tok
    return tok


@lru_cache(maxsize=200_000)
def porter2(word: str) -> str:
    """Snowball-English-stem one lowercase word (2 letters or fewer, and numbers, kept)."""
    if len(word) <= 2 or not word.isalpha():
        return word
    return str(_snowball().stemWord(word))
