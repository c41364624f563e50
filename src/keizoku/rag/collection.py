"""A collection: incremental ingest, access lists, and access-filtered hybrid search."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from keizoku.errors import KeizokuWarning, NotFoundError, UserInputError
from keizoku.home import sha256_file
from keizoku.rag.access import Identity, normalize_acl
from keizoku.rag.chunk import ChunkConfig, chunk_document
from keizoku.rag.embed import (
    EmbeddingConfig,
    embedder_for,
    resolve_model_name,
)
from keizoku.rag.index import DenseIndex, FusionConfig, LexicalIndex, fuse, top_k
from keizoku.rag.parse import SUFFIXES, ParsedDoc, parse_file
from keizoku.rag.store import collection_dir, connect, prune_generations, reader
from keizoku.rag.text import detect_language, tokenize, tokenize_query

__all__ = [
    "DocInput",
    "Hit",
    "IngestReport",
    "DEFAULT_FUSION",
    "file_inputs",
    "ingest",
    "search",
    "set_acl",
    "list_docs",
    "collection_info",
    "embedding_config",
]

# Default retrieval: dense weight and neighbour weight chosen on the dev half (even-numbered
# articles) of XQuAD-en sentence retrieval, reported on the other half (docs/rag.md, Benchmark).
# The dev grid is flat around it (alpha 0.3-0.8, neighbour 0.1-0.3 all within ~0.01 nDCG).
DEFAULT_FUSION = FusionConfig(alpha=0.7, neighbour=0.3, mode="hybrid")


@dataclass
class DocInput:
    """One document to ingest: its key, content hash, a lazy parser, and non-content ACL."""

    source: str
    sha256: str
    parse: Callable[[], ParsedDoc]
    extra_acl: tuple[str, ...] = ()


@dataclass
class IngestReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    acl_changed: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embedding: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Hit:
    rank: int
    score: float
    chunk_id: int
    source: str
    title: str
    heading_path: tuple[str, ...]
    position: int
    text: str

    def to_dict(self) -> dict[str, object]:
        return {
            "rank": self.rank, "score": round(self.score, 6), "chunk_id": self.chunk_id,
            "source": self.source, "title": self.title, "heading_path": list(self.heading_path),
            "position": self.position, "text": self.text,
        }  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _walk(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if (
            path.is_file()
            and path.suffix.lower() in SUFFIXES
            and not any(p.startswith(".") for p in rel)
        ):
            yield path


def file_inputs(paths: Sequence[str | Path], allow: Sequence[str] = ()) -> tuple[
    list[DocInput], list[str]
]:  # fmt: skip
    """DocInputs for files under ``paths`` and the scopes (folders/files) they cover."""
    extra = normalize_acl(allow)
    inputs: list[DocInput] = []
    scopes: list[str] = []
    from keizoku.rag.parse import read_sidecar_acl

    for raw in paths:
        root = Path(raw).expanduser().resolve()
        if not root.exists():
            raise UserInputError(
                f"Path {raw} does not exist. Pass files or folders of .md, .txt, .html, .pdf, "
                ".docx documents."
            )
        if root.is_file() and root.suffix.lower() not in SUFFIXES:
            raise UserInputError(
                f"File {raw} has suffix {root.suffix!r}, which keizoku cannot read. "
                f"Supported: {', '.join(sorted(SUFFIXES))}."
            )
        scopes.append(str(root))
        for path in _walk(root):
            acl = normalize_acl((*extra, *read_sidecar_acl(path)))
            parse = functools.partial(parse_file, path)
            inputs.append(DocInput(str(path), sha256_file(path), parse, acl))
    return inputs, scopes


def _in_scope(source: str, scopes: Sequence[str] | None) -> bool:
    if scopes is None:
        return False
    return any(source == s or source.startswith(s.rstrip("/") + "/") for s in scopes)


def _effective_acl(content: str, ingest_: str, override: str | None) -> tuple[str, ...]:
    if override is not None:
        return tuple(json.loads(override))
    return normalize_acl((*json.loads(content), *json.loads(ingest_)))


def _write_acl(conn: sqlite3.Connection, doc_id: int, acl: Iterable[str]) -> bool:
    old = {r[0] for r in conn.execute("SELECT principal FROM acl WHERE doc_id=?", (doc_id,))}
    new = set(acl)
    if old == new:
        return False
    conn.execute("DELETE FROM acl WHERE doc_id=?", (doc_id,))
    conn.executemany("INSERT INTO acl VALUES (?, ?)", [(doc_id, p) for p in sorted(new)])
    return True


# BM25 sees the title as a field of weight 2 (written twice), headings and text once: chosen
# on the dev halves of JSQuAD and XQuAD (decision 0029)
TITLE_WEIGHT = 2


def _index_text(title: str, headings: Sequence[str], text: str) -> str:
    """The text BM25 indexes for a chunk: its title ``TITLE_WEIGHT`` times, headings, text."""
    return " ".join((*[title] * TITLE_WEIGHT, *headings, text))


def _embed_text(title: str, headings: Sequence[str], text: str) -> str:
    head = " > ".join(h for h in (title, *headings) if h)
    return f"{head}: {text}" if head else text


@dataclass
class _Generation:
    gen: int
    rows: np.ndarray  # chunk id per row
    row_docs: np.ndarray  # doc id per row
    prev_row: np.ndarray  # row of the previous chunk of the same doc, -1 if none
    next_row: np.ndarray
    lexical: LexicalIndex
    dense: DenseIndex


_GEN_CACHE: dict[tuple[str, int], _Generation] = {}
_GEN_LOCK = threading.Lock()


def _load_generation(name: str, gen: int, where: Path | None = None) -> _Generation:
    where = where or collection_dir(name)
    key = (str(where), gen)
    with _GEN_LOCK:
        if key in _GEN_CACHE:
            return _GEN_CACHE[key]
    folder = where / f"gen-{gen}"
    with np.load(folder / "rows.npz") as z:
        arrays = {k: z[k] for k in ("rows", "row_docs", "prev_row", "next_row")}
    loaded = _Generation(gen, lexical=LexicalIndex.load(folder), dense=DenseIndex.load(folder),
                         **arrays)  # fmt: skip
    with _GEN_LOCK:
        for old in [k for k in _GEN_CACHE if k[0] == key[0]]:
            del _GEN_CACHE[old]
        _GEN_CACHE[key] = loaded
    return loaded


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _build_generation(
    conn: sqlite3.Connection,
    name: str,
    new_gen: int,
    new_vecs: dict[int, np.ndarray],
    dim: int,
) -> int:
    from keizoku.rag.index import _save_npz

    rows = conn.execute(
        "SELECT c.id, c.doc_id, c.tokens FROM chunks c ORDER BY c.doc_id, c.position"
    ).fetchall()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    docs = np.asarray([r[1] for r in rows], dtype=np.int64)
    same_prev = np.r_[False, docs[1:] == docs[:-1]] if len(docs) else np.zeros(0, bool)
    same_next = np.r_[docs[:-1] == docs[1:], False] if len(docs) else np.zeros(0, bool)
    arange = np.arange(len(ids))
    prev_row = np.where(same_prev, arange - 1, -1).astype(np.int64)
    next_row = np.where(same_next, arange + 1, -1).astype(np.int64)

    old_gen = _meta(conn, "generation")
    old_pos: dict[int, int] = {}
    old: _Generation | None = None
    if old_gen is not None:
        old = _load_generation(name, int(old_gen))
        old_pos = {int(c): i for i, c in enumerate(old.rows)}
        if not new_vecs:
            dim = old.dense.vectors.shape[1]
    vectors = np.zeros((len(ids), dim), dtype=np.float32)
    for i, cid in enumerate(ids.tolist()):
        if cid in new_vecs:
            vectors[i] = new_vecs[cid]
        elif old is not None and cid in old_pos and old.dense.vectors.shape[1] == dim:
            vectors[i] = old.dense.vectors[old_pos[cid]]
        else:
            raise UserInputError(
                f"Chunk {cid} of collection {name!r} has no embedding. Rebuild the collection "
                f"with 'keizoku rag ingest PATH --collection {name} --rebuild'."
            )
    folder = collection_dir(name) / f"gen-{new_gen}"
    folder.mkdir(parents=True, exist_ok=True)
    _save_npz(folder / "rows.npz", rows=ids, row_docs=docs, prev_row=prev_row, next_row=next_row)
    LexicalIndex.build([r[2].split() for r in rows]).save(folder)
    DenseIndex.build(vectors).save(folder)
    return len(ids)


def ingest(
    name: str,
    inputs: Sequence[DocInput],
    scopes: Sequence[str] | None = None,
    chunking: ChunkConfig | None = None,
    model: str | None = None,
    rebuild: bool = False,
    embedding: EmbeddingConfig | None = None,
) -> IngestReport:
    """Add, update and remove documents; unchanged content (same sha256) is not re-embedded.

    Documents already in the collection whose source lies under one of ``scopes`` but
    is not among ``inputs`` are removed (from the database and from every index).
    ``embedding`` (or ``model``, a local model) is fixed at the first ingest and can
    change only with ``rebuild``; left unset on a collection whose first ingest is mostly
    Japanese, the collection is lexical-only (the report says so).
    """
    start = time.perf_counter()
    report = IngestReport(name)
    conn = connect(name, create=True)
    try:
        conn.execute("BEGIN IMMEDIATE")
        stored = _stored_embedding(conn)
        requested = embedding or (EmbeddingConfig(model=resolve_model_name(model)) if model
                                  else None)  # fmt: skip
        if requested and stored and requested != stored and not rebuild:
            raise UserInputError(
                f"Collection {name!r} embeds with {stored.describe()}, not "
                f"{requested.describe()}. Re-ingest with --rebuild to change it, or ingest into "
                "a new collection."
            )
        existing = {
            r[0]: r[1:]
            for r in conn.execute("SELECT source, id, sha256, content_acl, acl_override FROM docs")
        }
        seen: set[str] = set()
        pending: list[tuple[int, str]] = []
        for inp in inputs:
            if inp.source in seen:
                continue
            seen.add(inp.source)
            row = existing.get(inp.source)
            ingest_acl = json.dumps(list(inp.extra_acl))
            if row is not None and row[1] == inp.sha256 and not rebuild:
                doc_id, content_acl, override = row[0], row[2], row[3]
                conn.execute("UPDATE docs SET ingest_acl=? WHERE id=?", (ingest_acl, doc_id))
                if _write_acl(conn, doc_id, _effective_acl(content_acl, ingest_acl, override)):
                    report.acl_changed.append(inp.source)
                report.unchanged.append(inp.source)
                continue
            parsed = inp.parse()
            content_acl = json.dumps(list(parsed.acl))
            if row is None:
                cur = conn.execute(
                    "INSERT INTO docs (source, title, kind, sha256, content_acl, ingest_acl, "
                    "ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (inp.source, parsed.title, parsed.kind, inp.sha256, content_acl, ingest_acl,
                     _now()),
                )  # fmt: skip
                doc_id, override = int(cur.lastrowid or 0), None
                report.added.append(inp.source)
            else:
                doc_id, override = row[0], row[3]
                conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                conn.execute(
                    "UPDATE docs SET title=?, kind=?, sha256=?, content_acl=?, ingest_acl=?, "
                    "ingested_at=? WHERE id=?",
                    (parsed.title, parsed.kind, inp.sha256, content_acl, ingest_acl, _now(),
                     doc_id),
                )  # fmt: skip
                report.updated.append(inp.source)
            acl = _effective_acl(content_acl, ingest_acl, override)
            if not acl:
                warnings.warn(
                    f"Document {inp.source} has no access list, so nobody can see it. Add "
                    "--allow group:NAME, a sidecar .acl file or 'allow:' front matter.",
                    KeizokuWarning,
                    stacklevel=2,
                )
            _write_acl(conn, doc_id, acl)
            for ch in chunk_document(parsed, chunking):
                tokens = tokenize(_index_text(parsed.title, ch.heading_path, ch.text))
                cur = conn.execute(
                    "INSERT INTO chunks (doc_id, position, heading_path, text, tokens) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (doc_id, ch.position, json.dumps(list(ch.heading_path)), ch.text,
                     " ".join(tokens)),
                )  # fmt: skip
                pending.append(
                    (int(cur.lastrowid or 0), _embed_text(parsed.title, ch.heading_path, ch.text))
                )
        for source, row in existing.items():
            if source not in seen and _in_scope(source, scopes):
                conn.execute("DELETE FROM docs WHERE id=?", (row[0],))
                report.removed.append(source)
        changed = report.added or report.updated or report.removed
        gen = _meta(conn, "generation")
        cfg = (requested if rebuild and requested else stored) or requested
        if cfg is None:
            cfg = _default_embedding([t for _, t in pending], report)
        report.embedding = cfg.describe()
        if changed or gen is None:
            embedder = embedder_for(cfg)
            vecs = embedder.encode([t for _, t in pending])
            new_vecs = {cid: vecs[i] for i, (cid, _) in enumerate(pending)}
            new_gen = 0 if gen is None else int(gen) + 1
            dim = vecs.shape[1] if len(pending) else embedder.dim
            report.chunks_total = _build_generation(conn, name, new_gen, new_vecs, dim)
            report.chunks_embedded = len(pending) if cfg.backend != "none" else 0
            _set_meta(conn, "generation", str(new_gen))
            _set_meta(conn, "model", cfg.model if cfg.backend != "none" else "none")
            _set_meta(conn, "embedding", cfg.to_json())
        else:
            report.chunks_total = int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    if changed:
        prune_generations(name, int(gen or 0) + 1)
    report.seconds = time.perf_counter() - start
    return report


def _allowed_rows(row_docs: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    """Sorted rows whose document is in ``doc_ids`` (a mask by document id, no sorting)."""
    if len(row_docs) == 0:
        return np.zeros(0, dtype=np.int64)
    mask = np.zeros(int(row_docs.max()) + 1, dtype=bool)
    mask[doc_ids[doc_ids < len(mask)]] = True
    return np.flatnonzero(mask[row_docs])


def _has_index(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='index' AND name=?", (name,))
    return row.fetchone() is not None


def _stored_embedding(conn: sqlite3.Connection) -> EmbeddingConfig | None:
    raw = _meta(conn, "embedding")
    if raw is not None:
        return EmbeddingConfig(**json.loads(raw))
    legacy = _meta(conn, "model")  # collections made before per-collection embedding configs
    return EmbeddingConfig(model=legacy) if legacy else None


def _default_embedding(texts: Sequence[str], report: IngestReport) -> EmbeddingConfig:
    """MiniLM (English), or lexical-only when most new chunks are Japanese (no server set)."""
    ja = sum(detect_language(t) == "ja" for t in texts)
    if texts and ja >= 0.5 * len(texts) and not os.environ.get("KEIZOKU_EMBED_MODEL"):
        report.notes.append(
            f"{ja} of {len(texts)} chunks are Japanese and no embedding server is configured: "
            "the collection is lexical-only (BM25; the bundled MiniLM is English-only). Set "
            "embeddings.url in a collection config (-c) and re-ingest with --rebuild for "
            "hybrid search."
        )
        return EmbeddingConfig(backend="none", model="none")
    return EmbeddingConfig(model=resolve_model_name(None))


def embedding_config(name: str) -> EmbeddingConfig | None:
    """The collection's embedding config (``None`` before its first ingest)."""
    conn = connect(name)
    try:
        return _stored_embedding(conn)
    finally:
        conn.close()


def collection_info(name: str) -> dict[str, object]:
    """Documents, chunks, languages and how the collection is searched."""
    conn = connect(name)
    try:
        cfg = _stored_embedding(conn)
        docs = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        texts = [r[0] for r in conn.execute("SELECT text FROM chunks")]
    finally:
        conn.close()
    langs: dict[str, int] = {}
    for t in texts:
        lang = detect_language(t)
        langs[lang] = langs.get(lang, 0) + 1
    lexical_only = cfg is not None and cfg.backend == "none"
    return {
        "collection": name, "documents": docs, "chunks": len(texts), "languages": langs,
        "embedding": cfg.describe() if cfg else None,
        "search": "lexical-only (BM25)" if lexical_only else "hybrid (BM25 + dense)",
    }  # fmt: skip


def _resolve_source(conn: sqlite3.Connection, source: str) -> tuple[int, str]:
    candidates = [source]
    path = Path(source).expanduser()
    if path.exists():
        candidates.insert(0, str(path.resolve()))
    for cand in candidates:
        row = conn.execute("SELECT id, source FROM docs WHERE source=?", (cand,)).fetchone()
        if row:
            return int(row[0]), str(row[1])
    raise NotFoundError(
        f"Document {source!r} is not in this collection. List documents with "
        "'keizoku rag docs --collection NAME'."
    )


def set_acl(name: str, source: str, allow: Sequence[str] | None) -> tuple[str, ...]:
    """Override a document's access list (``None`` clears the override); effective now."""
    conn = connect(name)
    try:
        conn.execute("BEGIN IMMEDIATE")
        doc_id, _ = _resolve_source(conn, source)
        override = None if allow is None else json.dumps(list(normalize_acl(allow)))
        conn.execute("UPDATE docs SET acl_override=? WHERE id=?", (override, doc_id))
        content, ingest_ = conn.execute(
            "SELECT content_acl, ingest_acl FROM docs WHERE id=?", (doc_id,)
        ).fetchone()
        acl = _effective_acl(content, ingest_, override)
        _write_acl(conn, doc_id, acl)
        conn.execute("COMMIT")
        return acl
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def list_docs(name: str, identity: Identity | None = None) -> list[dict[str, object]]:
    """Documents with their access lists; with ``identity``, only the ones it may see."""
    conn = connect(name)
    try:
        docs = conn.execute(
            "SELECT d.id, d.source, d.title, d.kind, d.ingested_at, COUNT(c.id) FROM docs d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.source"
        ).fetchall()
        acl: dict[int, list[str]] = {}
        for doc_id, principal in conn.execute("SELECT doc_id, principal FROM acl"):
            acl.setdefault(doc_id, []).append(principal)
    finally:
        conn.close()
    allowed = None if identity is None else set(identity.principals())
    return [
        {"source": s, "title": t, "kind": k, "ingested_at": at, "chunks": n,
         "allow": sorted(acl.get(i, []))}
        for i, s, t, k, at, n in docs
        if allowed is None or allowed.intersection(acl.get(i, []))
    ]  # fmt: skip


def search(
    name: str,
    query: str,
    identity: Identity,
    k: int = 10,
    fusion: FusionConfig | None = None,
) -> list[Hit]:
    """The ``k`` best chunks of ``name`` that ``identity`` may see (nothing without identity)."""
    if not query.strip():
        raise UserInputError("The query is empty. Pass a question or keywords to search for.")
    if k < 1 or k > 1000:
        raise UserInputError(f"k={k} is out of range. Use 1 <= k <= 1000.")
    cfg = fusion or DEFAULT_FUSION
    kept = reader(name)  # NotFoundError for a missing collection, whoever asks
    principals = identity.principals()
    if not principals:
        return []
    try:
        derived = kept.snapshot()  # one snapshot for the generation, the ACL and the chunks
        state = derived.get(None)
        if state is None:
            state = derived[None] = _read_state(kept.conn, name)
        if state is None:
            return []
        gen, emb = state
        if emb.backend == "none" and cfg.mode != "lexical":
            if cfg.mode == "dense":
                raise UserInputError(
                    f"Collection {name!r} is lexical-only (no embedding server configured), so "
                    "--mode dense has nothing to search. Use --mode lexical or hybrid, or set "
                    "embeddings.url in the collection config and re-ingest with --rebuild."
                )
            cfg = FusionConfig(cfg.alpha, cfg.neighbour, "lexical")
        g = _load_generation(name, gen, kept.folder)
        allowed = derived.get(principals)
        if allowed is None:
            allowed = derived[principals] = _allowed_for(kept.conn, g, principals)
        if len(allowed) == 0:
            return []
        lexical = None
        if cfg.mode != "dense":
            lexical = g.lexical.scores(tokenize_query(query), allowed)
        dense_rows = dense = None
        if cfg.mode != "lexical":
            qvec = embedder_for(emb).encode([query])[0]
            dense_rows, dense = g.dense.scores(qvec, allowed)
        fused = fuse(allowed, lexical, dense_rows, dense, g.prev_row, g.next_row, cfg)
        order = top_k(fused, k)
        if cfg.mode == "lexical" and lexical is not None:
            # chunks without a query term: raw BM25 0 (min-max would also zero the lowest match)
            order = order[lexical[order] > 0]
        picked = [(int(g.rows[allowed[i]]), float(fused[i])) for i in order]
        return _hits(kept.conn, picked, principals)
    finally:
        kept.end()


def _read_state(conn: sqlite3.Connection, name: str) -> tuple[int, EmbeddingConfig] | None:
    """The generation a search reads and the collection's embedding (None: nothing indexed)."""
    gen = _meta(conn, "generation")
    emb = _stored_embedding(conn)
    return None if gen is None or emb is None else (int(gen), emb)


def _allowed_for(
    conn: sqlite3.Connection, g: _Generation, principals: tuple[str, ...]
) -> np.ndarray:
    """Sorted rows of ``g`` whose document lists one of ``principals``."""
    marks = ",".join("?" * len(principals))
    index = "INDEXED BY acl_principal_doc" if _has_index(conn, "acl_principal_doc") else ""
    listed = conn.execute(  # one string: far cheaper than a Python row per document
        f"SELECT group_concat(doc_id) FROM acl {index} WHERE principal IN ({marks})",
        principals,
    ).fetchone()[0]
    if not listed:
        return np.zeros(0, dtype=np.int64)
    return _allowed_rows(g.row_docs, np.asarray(listed.split(","), dtype=np.int64))


def _hits(
    conn: sqlite3.Connection, picked: list[tuple[int, float]], principals: Sequence[str]
) -> list[Hit]:
    if not picked:
        return []
    ids = [cid for cid, _ in picked]
    marks = ",".join("?" * len(ids))
    pmarks = ",".join("?" * len(principals))
    # the access list is checked again here, in SQL, as a second guard
    rows = conn.execute(
        f"SELECT c.id, d.source, d.title, c.heading_path, c.position, c.text FROM chunks c "
        f"JOIN docs d ON d.id = c.doc_id WHERE c.id IN ({marks}) AND EXISTS ("
        f"SELECT 1 FROM acl a WHERE a.doc_id = d.id AND a.principal IN ({pmarks}))",
        (*ids, *principals),
    ).fetchall()
    by_id = {r[0]: r for r in rows}
    hits: list[Hit] = []
    for cid, score in picked:
        r = by_id.get(cid)
        if r is not None:
            hits.append(
                Hit(len(hits) + 1, score, cid, r[1], r[2], tuple(json.loads(r[3])), r[4], r[5])
            )
    return hits
