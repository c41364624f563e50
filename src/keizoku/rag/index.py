"""Embedded lexical + dense indices that score only the chunks an identity may see.

Every search takes ``allowed``: the sorted row numbers the asking identity may see,
computed from the access lists before any scoring. Both paths touch only those rows:

* lexical: BM25 (Lucene variant, k1=0.9, b=0.75) over the postings of the query
  terms, keeping only postings of allowed rows. Its statistics (document count,
  document frequency, average length) are also computed over the allowed rows, so a
  forbidden chunk cannot even shift a score.
* dense: cosine similarity of normalised embeddings, on the allowed rows only
  (exact), or on the allowed rows of the probed IVF lists beyond ``IVF_MIN_ROWS``.

The fused score is a convex combination of the two, each min-max normalised over the
allowed candidates, then smoothed with the best neighbouring chunk of the same document.
A collection embedded by a local model also stores each chunk's token states: a hybrid
search then feeds its best chunks back into the query vector and reranks its top 20 by
late interaction (:func:`late_interaction`, decision 0030 s11), still over allowed rows only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keizoku.home import atomic_write_bytes

__all__ = [
    "FusionConfig",
    "LexicalIndex",
    "DenseIndex",
    "TokenIndex",
    "late_interaction",
    "fuse",
    "top_k",
    "IVF_MIN_ROWS",
]

IVF_MIN_ROWS = 200_000  # exact search below this many rows (measured: see docs/rag.md)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


@dataclass
class LexicalIndex:
    """Postings of term frequencies, one column per term (CSC): rows and tfs per term."""

    vocab: dict[str, int]
    indptr: np.ndarray
    rows: np.ndarray
    tfs: np.ndarray
    doclen: np.ndarray
    k1: float = 0.9  # Anserini's default; best on both dev halves (decision 0029)
    b: float = 0.75

    @classmethod
    def build(cls, docs_tokens: list[list[str]]) -> LexicalIndex:
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        row_ids: list[int] = []
        counts: list[int] = []
        doclen = np.zeros(len(docs_tokens), dtype=np.float32)
        for row, tokens in enumerate(docs_tokens):
            doclen[row] = len(tokens)
            for tok, n in Counter(tokens).items():
                term_ids.append(vocab.setdefault(tok, len(vocab)))
                row_ids.append(row)
                counts.append(n)
        terms = np.asarray(term_ids, dtype=np.int64)
        order = np.argsort(terms, kind="stable")
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=len(vocab)), out=indptr[1:])
        return cls(
            vocab,
            indptr,
            np.asarray(row_ids, dtype=np.int32)[order],
            np.asarray(counts, dtype=np.float32)[order],
            doclen,
        )

    def save(self, folder: Path) -> None:
        _save_npz(folder / "bm25.npz", indptr=self.indptr, rows=self.rows, tfs=self.tfs,
                  doclen=self.doclen)  # fmt: skip
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        atomic_write_bytes(folder / "vocab.json", json.dumps(terms).encode("utf-8"))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        with np.load(folder / "bm25.npz") as z:
            arrays = {k: z[k] for k in ("indptr", "rows", "tfs", "doclen")}
        terms = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        return cls({t: i for i, t in enumerate(terms)}, **arrays)

    def scores(self, query_tokens: list[str], allowed: np.ndarray) -> np.ndarray:
        """BM25 scores aligned with ``allowed`` (statistics over the allowed rows only).

        One pass over the query terms' postings: a row outside ``allowed`` has an infinite
        length factor, so its weight is 0 and it counts in no document frequency.
        """
        n_allowed = len(allowed)
        if n_allowed == 0:
            return np.zeros(0, dtype=np.float32)
        counts = Counter(query_tokens)
        tids = [self.vocab[t] for t in counts if t in self.vocab]
        if not tids:
            return np.zeros(n_allowed, dtype=np.float32)
        qtf = np.asarray([counts[t] for t in counts if t in self.vocab], dtype=np.float64)
        avgdl = float(self.doclen[allowed].mean()) or 1.0
        lenfac = np.full(len(self.doclen), np.inf, dtype=np.float32)
        lenfac[allowed] = self.k1 * (1.0 - self.b + self.b * self.doclen[allowed] / avgdl)
        starts, ends = self.indptr[tids], self.indptr[np.asarray(tids) + 1]
        rows = np.concatenate([self.rows[lo:hi] for lo, hi in zip(starts, ends, strict=True)])
        tf = np.concatenate([self.tfs[lo:hi] for lo, hi in zip(starts, ends, strict=True)])
        lf = lenfac[rows]
        lengths = ends - starts
        if n_allowed == len(self.doclen):
            df = lengths
        else:  # postings of allowed rows per term (an empty span counts none)
            offsets = np.r_[0, np.cumsum(lengths)[:-1]]
            df = np.add.reduceat(np.isfinite(lf), offsets, dtype=np.int64) * (lengths > 0)
        idf = (qtf * np.log(1.0 + (n_allowed - df + 0.5) / (df + 0.5))).astype(np.float32)
        weight = tf * (self.k1 + 1.0) / (tf + lf) * np.repeat(idf, lengths)
        full = np.bincount(rows, weights=weight, minlength=len(self.doclen))
        out: np.ndarray = full[allowed].astype(np.float32)
        return out


@dataclass
class DenseIndex:
    """Normalised embeddings, one row per chunk; an IVF partition when large."""

    vectors: np.ndarray
    centroids: np.ndarray | None = None
    assign: np.ndarray | None = None

    @classmethod
    def build(cls, vectors: np.ndarray, ivf_min_rows: int = IVF_MIN_ROWS) -> DenseIndex:
        index = cls(np.ascontiguousarray(vectors, dtype=np.float32))
        if len(vectors) >= ivf_min_rows:
            index.centroids, index.assign = _kmeans(index.vectors, int(np.sqrt(len(vectors))))
        return index

    def save(self, folder: Path) -> None:
        import io

        buf = io.BytesIO()
        np.save(buf, self.vectors)
        atomic_write_bytes(folder / "embeddings.npy", buf.getvalue())
        if self.centroids is not None and self.assign is not None:
            _save_npz(folder / "ivf.npz", centroids=self.centroids, assign=self.assign)

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        vectors = np.load(folder / "embeddings.npy")
        ivf = folder / "ivf.npz"
        if ivf.is_file():
            with np.load(ivf) as z:
                return cls(vectors, z["centroids"], z["assign"])
        return cls(vectors)

    def scores(
        self, query: np.ndarray, allowed: np.ndarray, nprobe: int = 16, min_candidates: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """(candidate rows, cosine scores); candidates are allowed rows (all, or probed lists)."""
        cand = allowed
        if self.centroids is not None and self.assign is not None and len(allowed):
            order = np.argsort(-(self.centroids @ query))
            lists = self.assign[allowed]
            for n in (nprobe, nprobe * 4, len(order)):
                cand = allowed[np.isin(lists, order[:n])]
                if len(cand) >= min(min_candidates, len(allowed)):
                    break
        if len(cand) == 0:
            return cand, np.zeros(0, dtype=np.float32)
        return cand, self.vectors[cand] @ query


@dataclass
class TokenIndex:
    """Each chunk's token states (float16 rows, one block a chunk) for late interaction.

    Stored beside the dense vectors and memory-mapped on load: a query reads only the
    blocks of the chunks it reranks.
    """

    vectors: np.ndarray  # (all tokens, dim)
    offsets: np.ndarray  # row i's block: vectors[offsets[i] : offsets[i + 1]]

    @classmethod
    def build(cls, blocks: list[np.ndarray], dim: int) -> TokenIndex:
        offsets = np.zeros(len(blocks) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in blocks], out=offsets[1:])
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=np.float16)
        return cls(np.ascontiguousarray(vectors, dtype=np.float16), offsets)

    def save(self, folder: Path) -> None:
        import io

        for name, arr in (("tokens.npy", self.vectors), ("token_offsets.npy", self.offsets)):
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(folder / name, buf.getvalue())

    @staticmethod
    def stored(folder: Path) -> bool:
        """Whether the generation in ``folder`` has token states (its offsets file)."""
        return (folder / "token_offsets.npy").is_file()

    @classmethod
    def load(cls, folder: Path) -> TokenIndex | None:
        """The stored token states; ``None`` for a generation without them."""
        if not cls.stored(folder):
            return None
        return cls(np.load(folder / "tokens.npy", mmap_mode="r"),
                   np.load(folder / "token_offsets.npy"))  # fmt: skip

    def block(self, row: int) -> np.ndarray:
        return np.asarray(self.vectors[self.offsets[row] : self.offsets[row + 1]])

    def maxsim(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per row: the mean over ``query``'s token states of each one's best cosine
        among the row's token states (ColBERT's MaxSim, averaged)."""
        out = np.zeros(len(rows), dtype=np.float32)
        if len(query) == 0:
            return out
        q = np.ascontiguousarray(query, dtype=np.float32).T
        # one small product a chunk: one large one makes a multi-threaded BLAS wake its
        # threads, 12-16 ms against 0.4 ms for 20 chunks on a busy 2-core machine
        for i, r in enumerate(rows.tolist()):
            out[i] = (self.block(r).astype(np.float32) @ q).max(axis=0).mean()
        return out


def _kmeans(x: np.ndarray, k: int, iters: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(len(x), k * 40), replace=False)]
    cent = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    for _ in range(iters):
        lab = np.argmax(sample @ cent.T, axis=1)
        for j in range(k):
            members = sample[lab == j]
            if len(members):
                c = members.mean(axis=0)
                cent[j] = c / (np.linalg.norm(c) or 1.0)
    assign = np.empty(len(x), dtype=np.int32)
    for lo in range(0, len(x), 20_000):
        assign[lo : lo + 20_000] = np.argmax(x[lo : lo + 20_000] @ cent.T, axis=1)
    return cent.astype(np.float32), assign


@dataclass(frozen=True)
class FusionConfig:
    """How lexical and dense scores are combined (see docs/rag.md for how these were chosen).

    ``alpha``: weight of the dense score in the convex combination (1 - alpha for BM25).
    ``neighbour``: weight of the best adjacent chunk's fused score of the same document.
    ``mode``: ``hybrid`` (default), ``lexical`` or ``dense``.
    ``rerank``: in hybrid mode, on a collection with token states, :func:`late_interaction`.
    """

    alpha: float = 0.5
    neighbour: float = 0.0
    mode: str = "hybrid"
    rerank: bool = True


def _minmax(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        return (x - lo) / (hi - lo)
    return np.ones_like(x) if hi > 0 else np.zeros_like(x)


def fuse(
    allowed: np.ndarray,
    lexical: np.ndarray | None,
    dense_rows: np.ndarray | None,
    dense: np.ndarray | None,
    prev_row: np.ndarray,
    next_row: np.ndarray,
    cfg: FusionConfig,
) -> np.ndarray:
    """Fused scores aligned with ``allowed``; rows never scored by a path count 0 there."""
    total = np.zeros(len(allowed), dtype=np.float32)
    if lexical is not None and cfg.mode != "dense":
        w = 1.0 if cfg.mode == "lexical" else 1.0 - cfg.alpha
        total += w * _minmax(lexical)
    if dense is not None and dense_rows is not None and cfg.mode != "lexical" and len(dense):
        w = 1.0 if cfg.mode == "dense" else cfg.alpha
        part = np.zeros(len(allowed), dtype=np.float32)
        part[np.searchsorted(allowed, dense_rows)] = _minmax(dense)
        total += w * part
    if cfg.neighbour > 0 and len(allowed):
        full = np.zeros(len(prev_row) + 1, dtype=np.float32)  # last slot: "no neighbour"
        full[allowed] = total
        nb = np.maximum(full[prev_row[allowed]], full[next_row[allowed]])
        total = total + cfg.neighbour * nb
    return total


@dataclass(frozen=True)
class LateInteraction:
    """Dense pseudo-relevance feedback, then a MaxSim rerank (decision 0030, s11).

    Chosen on XQuAD's dev half from a grid fixed beforehand: ``feedback_docs`` (m) and
    ``feedback_weight`` (g) of Rocchio's ``q + g * mean(top m)``; the rerank depth ``k`` and
    the MaxSim share ``weight`` of the reranked score.
    """

    feedback_docs: int = 3
    feedback_weight: float = 0.5
    k: int = 20
    weight: float = 0.5


LATE_INTERACTION = LateInteraction()


def late_interaction(
    fused: np.ndarray,
    allowed: np.ndarray,
    rescore: Callable[[np.ndarray], np.ndarray],
    dense: DenseIndex,
    tokens: TokenIndex,
    query_vector: np.ndarray,
    query_tokens: np.ndarray,
    cfg: LateInteraction = LATE_INTERACTION,
) -> np.ndarray:
    """``fused`` (aligned with ``allowed``) after feedback and the MaxSim rerank.

    1. Rocchio on the dense side: the query vector plus ``feedback_weight`` times the mean
       vector of the ``feedback_docs`` best fused chunks (allowed ones: ``fused`` holds no
       other); ``rescore`` fuses again with that vector.
    2. The new top ``k`` are scored ``(1 - w) * fused + w * minmax(MaxSim)``; every other
       chunk keeps ``(1 - w) * fused``, so it stays below them in the same order.
    """
    if len(fused) == 0:
        return fused
    top = top_k(fused, cfg.feedback_docs)
    q = query_vector + cfg.feedback_weight * dense.vectors[allowed[top]].mean(axis=0)
    fused = rescore(q / (np.linalg.norm(q) or 1.0))
    top = top_k(fused, cfg.k)
    out: np.ndarray = (1.0 - cfg.weight) * fused
    out[top] += cfg.weight * _minmax(tokens.maxsim(query_tokens, allowed[top]))
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first (ties by position)."""
    if len(scores) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]
