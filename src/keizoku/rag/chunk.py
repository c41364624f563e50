"""Chunking that respects headings and sentences, with overlap.

A chunk never crosses a heading: each section is chunked on its own. Inside a
section, whole sentences are packed until ``max_words``; the next chunk starts with
the last sentences of the previous one (up to ``overlap_words``). A single sentence
longer than ``hard_words`` is cut on word boundaries.

Japanese has no spaces, so a Japanese sentence (``text.detect_language``) is measured
in characters against ``max_chars`` / ``overlap_chars`` / ``hard_chars`` instead; a
chunk mixing both languages fills its budget with each sentence's share of its own limit.
Inside a Japanese paragraph a line break ends a sentence only after 。！？ or before a
list item; other line breaks are joined without a space.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from keizoku.errors import UserInputError
from keizoku.rag.parse import ParsedDoc
from keizoku.rag.text import detect_language, has_japanese, split_sentences

__all__ = ["Chunk", "ChunkConfig", "chunk_document"]


@dataclass(frozen=True)
class ChunkConfig:
    """``max_words``: target chunk size; ``overlap_words``: words carried over; ``hard_words``."""

    max_words: int = 120
    overlap_words: int = 25
    hard_words: int = 180
    max_chars: int = 300
    overlap_chars: int = 60
    hard_chars: int = 450

    def check(self) -> ChunkConfig:
        for unit in ("words", "chars"):
            top, over, hard = (getattr(self, f"{k}_{unit}") for k in ("max", "overlap", "hard"))
            if top < 1 or over < 0 or hard < top:
                raise UserInputError(
                    f"Chunk sizes max_{unit}={top}, overlap_{unit}={over}, hard_{unit}={hard} "
                    f"are inconsistent. Use max_{unit} >= 1, overlap_{unit} >= 0 and "
                    f"hard_{unit} >= max_{unit}."
                )
        return self

    def share(self, unit: str) -> float:
        """How much of a chunk's budget ``unit`` (a sentence) uses; 1.0 fills a chunk."""
        if detect_language(unit) == "ja":
            return len(unit) / self.max_chars
        return len(unit.split()) / self.max_words

    def overlap_share(self, unit: str) -> float:
        if detect_language(unit) == "ja":
            return len(unit) / self.overlap_chars if self.overlap_chars else float("inf")
        return len(unit.split()) / self.overlap_words if self.overlap_words else float("inf")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    position: int


_LIST_ITEM = re.compile(r"^\s*(?:[-*+・●○■□◆◇※]|\d+[.)．）]|[（(]\d+[)）])\s*")
_JA_LINE_END = ("。", "！", "？", "!", "?", "」", "』", ":", "：")


def _wide(ch: str) -> bool:
    """A full-width character (kana, kanji, 。、「」...): no space is needed next to it."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _join_lines(para: str) -> str:
    """One paragraph on one line: Japanese line breaks need no space (see module docstring)."""
    if not has_japanese(para):
        return " ".join(para.split())
    out = ""
    for line in (ln.strip() for ln in para.splitlines()):
        if not line:
            continue
        if not out:
            out = line
        elif out.endswith(_JA_LINE_END) or _LIST_ITEM.match(line):
            out += "\n" + line
        elif _wide(out[-1]) or _wide(line[0]):
            out += line
        else:
            out += " " + line
    return out


def _cut(sentence: str, cfg: ChunkConfig) -> list[str]:
    if detect_language(sentence) == "ja":
        step = cfg.hard_chars
        return [sentence[i : i + step] for i in range(0, len(sentence), step)]
    words = sentence.split()
    return [" ".join(words[i : i + cfg.hard_words]) for i in range(0, len(words), cfg.hard_words)]


def _units(text: str, cfg: ChunkConfig) -> list[str]:
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        for line in _join_lines(para).split("\n"):
            for sent in split_sentences(line.strip()):
                units.extend(_cut(sent, cfg))
    return units


def _glue(units: list[str]) -> str:
    """Sentences joined with a space, except between two Japanese ones."""
    out = ""
    for unit in units:
        if out and not (_wide(out[-1]) and _wide(unit[0])):
            out += " "
        out += unit
    return out


def _pack(units: list[str], cfg: ChunkConfig) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0.0
    fresh = 0  # sentences in ``current`` not yet emitted in an earlier chunk
    for unit in units:
        n = cfg.share(unit)
        if current and size + n > 1.0 + 1e-9:
            chunks.append(_glue(current))
            keep: list[str] = []
            kept = 0.0
            for prev in reversed(current):
                m = cfg.overlap_share(prev)
                if kept + m > 1.0 + 1e-9 or len(keep) + 1 >= len(current):
                    break
                keep.insert(0, prev)
                kept += m
            current, size, fresh = keep, sum(cfg.share(u) for u in keep), 0
        current.append(unit)
        size += n
        fresh += 1
    if current and fresh:
        chunks.append(_glue(current))
    return chunks


def chunk_document(doc: ParsedDoc, cfg: ChunkConfig | None = None) -> list[Chunk]:
    """Chunks of ``doc`` in reading order, numbered from 0."""
    cfg = (cfg or ChunkConfig()).check()
    out: list[Chunk] = []
    for section in doc.sections:
        for text in _pack(_units(section.text, cfg), cfg):
            out.append(Chunk(text, section.heading_path, len(out)))
    return out
