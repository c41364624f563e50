"""Chunking that respects headings and sentences, with overlap.

A chunk never crosses a heading: each section is chunked on its own. Inside a
section, whole sentences are packed until ``max_words``; the next chunk starts with
the last sentences of the previous one (up to ``overlap_words``). A single sentence
longer than ``hard_words`` is cut on word boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keizoku.errors import UserInputError
from keizoku.rag.parse import ParsedDoc
from keizoku.rag.text import split_sentences

__all__ = ["Chunk", "ChunkConfig", "chunk_document"]


@dataclass(frozen=True)
class ChunkConfig:
    """``max_words``: target chunk size; ``overlap_words``: words carried over; ``hard_words``."""

    max_words: int = 120
    overlap_words: int = 25
    hard_words: int = 180

    def check(self) -> ChunkConfig:
        if self.max_words < 1 or self.overlap_words < 0 or self.hard_words < self.max_words:
            raise UserInputError(
                f"Chunk sizes max_words={self.max_words}, overlap_words={self.overlap_words}, "
                f"hard_words={self.hard_words} are inconsistent. Use max_words >= 1, "
                "overlap_words >= 0 and hard_words >= max_words."
            )
        return self


@dataclass(frozen=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    position: int


def _units(text: str, hard: int) -> list[str]:
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        for sent in split_sentences(para):
            words = sent.split()
            for i in range(0, len(words), hard):
                units.append(" ".join(words[i : i + hard]))
    return units


def _pack(units: list[str], cfg: ChunkConfig) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fresh = 0  # sentences in ``current`` not yet emitted in an earlier chunk
    for unit in units:
        n = len(unit.split())
        if current and size + n > cfg.max_words:
            chunks.append(" ".join(current))
            keep: list[str] = []
            kept = 0
            for prev in reversed(current):
                m = len(prev.split())
                if kept + m > cfg.overlap_words or len(keep) + 1 >= len(current):
                    break
                keep.insert(0, prev)
                kept += m
            current, size, fresh = keep, kept, 0
        current.append(unit)
        size += n
        fresh += 1
    if current and fresh:
        chunks.append(" ".join(current))
    return chunks


def chunk_document(doc: ParsedDoc, cfg: ChunkConfig | None = None) -> list[Chunk]:
    """Chunks of ``doc`` in reading order, numbered from 0."""
    cfg = (cfg or ChunkConfig()).check()
    out: list[Chunk] = []
    for section in doc.sections:
        for text in _pack(_units(section.text, cfg.hard_words), cfg):
            out.append(Chunk(text, section.heading_path, len(out)))
    return out
