"""A collection: incremental ingest, access lists, and access-filtered hybrid search."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from keizoku.errors import KeizokuWarning, NotFoundError, UserInputError
from keizoku.home import sha256_file
from keizoku.rag.access import Identity, normalize_acl
from keizoku.rag.chunk import ChunkConfig, chunk_document
from keizoku.rag.embed import (
    AnyEmbedder,
    Embedder,
    EmbeddingConfig,
    embedder_for,
    resolve_model_name,
)
from keizoku.rag.index import (
    DenseIndex,
    FusionConfig,
    LexicalIndex,
    TokenIndex,
    fuse,
    late_interaction,
    top_k,
)
from keizoku.rag.parse import SUFFIXES, ParsedDoc, parse_file
from keizoku.rag.store import (
    PgCollection,
    SqliteCollection,
    connect,
    generation_dir,
    prune_generations,
    reader,
)
from keizoku.rag.text import DEFAULT_ANALYZER, LEGACY_ANALYZER, Analyzer, detect_language

_DB = SqliteCollection | PgCollection

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
    tokens: TokenIndex | None  # token states for the rerank (None: not stored)


_GEN_CACHE: dict[tuple[str, int], _Generation] = {}
_GEN_LOCK = threading.Lock()


def _load_generation(db: _DB, gen: int) -> _Generation:
    key = (str(db.folder), gen)
    with _GEN_LOCK:
        if key in _GEN_CACHE:
            return _GEN_CACHE[key]
    folder = generation_dir(db, gen)
    with np.load(folder / "rows.npz") as z:
        arrays = {k: z[k] for k in ("rows", "row_docs", "prev_row", "next_row")}
    loaded = _Generation(gen, lexical=LexicalIndex.load(folder), dense=DenseIndex.load(folder),
                         tokens=TokenIndex.load(folder), **arrays)  # fmt: skip
    with _GEN_LOCK:
        for old in [k for k in _GEN_CACHE if k[0] == key[0]]:
            del _GEN_CACHE[old]
        _GEN_CACHE[key] = loaded
    return loaded


QUERY_CACHE = 256  # recent queries whose vectors a search reuses (a bundled model only)
_QUERIES: dict[tuple[str, bool, str], tuple[np.ndarray, np.ndarray | None]] = {}
_QUERIES_LOCK = threading.Lock()


def _query_vectors(
    embedder: AnyEmbedder, query: str, tokens: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The query's vector, and its token states when ``tokens`` (``embedder`` is then a
    bundled model). A bundled model encodes a text the same way each time, so its last
    ``QUERY_CACHE`` queries are kept (read-only) and a repeated one is not encoded again; an
    embedding server is asked each time (its model may change behind the same name)."""
    if not isinstance(embedder, Embedder):
        return embedder.encode([query])[0], None
    key = (embedder.name, tokens, query)
    with _QUERIES_LOCK:
        kept = _QUERIES.pop(key, None)
        if kept is not None:
            _QUERIES[key] = kept  # the most recent last
            return kept
    if tokens:
        vectors, states = embedder.encode_with_tokens([query])
        found: tuple[np.ndarray, np.ndarray | None] = (vectors[0], states[0])
    else:
        found = (embedder.encode([query])[0], None)
    for array in found:
        if array is not None:
            array.setflags(write=False)
    with _QUERIES_LOCK:
        _QUERIES[key] = found
        while len(_QUERIES) > QUERY_CACHE:
            del _QUERIES[next(iter(_QUERIES))]
    return found


def _build_generation(
    db: _DB,
    name: str,
    new_gen: int,
    new_vecs: dict[int, np.ndarray],
    dim: int,
    new_tokens: dict[int, np.ndarray] | None = None,
) -> int:
    from keizoku.rag.index import _save_npz

    rows = db.chunk_rows()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    docs = np.asarray([r[1] for r in rows], dtype=np.int64)
    same_prev = np.r_[False, docs[1:] == docs[:-1]] if len(docs) else np.zeros(0, bool)
    same_next = np.r_[docs[:-1] == docs[1:], False] if len(docs) else np.zeros(0, bool)
    arange = np.arange(len(ids))
    prev_row = np.where(same_prev, arange - 1, -1).astype(np.int64)
    next_row = np.where(same_next, arange + 1, -1).astype(np.int64)

    old_gen = db.meta("generation")
    old_pos: dict[int, int] = {}
    old: _Generation | None = None
    if old_gen is not None:
        old = _load_generation(db, int(old_gen))
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
    folder = db.folder / f"gen-{new_gen}"
    folder.mkdir(parents=True, exist_ok=True)
    _save_npz(folder / "rows.npz", rows=ids, row_docs=docs, prev_row=prev_row, next_row=next_row)
    LexicalIndex.build([r[2].split() for r in rows]).save(folder)
    DenseIndex.build(vectors).save(folder)
    tokens = _token_blocks(ids, new_tokens or {}, old, old_pos, dim)
    if tokens is not None:
        TokenIndex.build(tokens, dim).save(folder)
    return len(ids)


def _token_blocks(
    ids: np.ndarray,
    new_tokens: dict[int, np.ndarray],
    old: _Generation | None,
    old_pos: dict[int, int],
    dim: int,
) -> list[np.ndarray] | None:
    """Every row's token states (new, else kept from the old generation); ``None`` when
    a row has none (an HTTP or lexical-only collection, or chunks embedded before token
    states were stored: the rerank waits for a ``--rebuild``)."""
    if not new_tokens:
        return None
    blocks: list[np.ndarray] = []
    for cid in ids.tolist():
        if cid in new_tokens:
            blocks.append(new_tokens[cid])
        elif old is not None and old.tokens is not None and cid in old_pos:
            blocks.append(old.tokens.block(old_pos[cid]))
        else:
            return None
    return blocks if all(b.shape[1] == dim for b in blocks) else None


def ingest(
    name: str,
    inputs: Sequence[DocInput],
    scopes: Sequence[str] | None = None,
    chunking: ChunkConfig | None = None,
    model: str | None = None,
    rebuild: bool = False,
    embedding: EmbeddingConfig | None = None,
    late_interaction: bool | None = None,
) -> IngestReport:
    """Add, update and remove documents; unchanged content (same sha256) is not re-embedded.

    Documents already in the collection whose source lies under one of ``scopes`` but
    is not among ``inputs`` are removed (from the database and from every index).
    ``embedding`` (or ``model``, a local model) is fixed at the first ingest and can
    change only with ``rebuild``; left unset on a collection whose first ingest is mostly
    Japanese, the collection is lexical-only (the report says so). ``late_interaction``
    (``None``: as ``embedding`` or the collection has it, else on) is part of it:
    ``False`` stores no token states, and searches rank with the plain hybrid.
    """
    start = time.perf_counter()
    report = IngestReport(name)
    db = connect(name, create=True)
    try:
        db.begin_write()
        stored = _stored_embedding(db)
        requested = _requested_embedding(embedding, model, late_interaction, stored)
        if requested and stored and requested != stored and not rebuild:
            raise UserInputError(
                f"Collection {name!r} embeds with {stored.describe()}, not "
                f"{requested.describe()}. Re-ingest with --rebuild to change it, or ingest into "
                "a new collection."
            )
        existing = {r[0]: r[1:] for r in db.docs()}
        analyzer = _ingest_analyzer(db, name, existing, inputs, scopes, rebuild, report)
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
                db.set_ingest_acl(doc_id, ingest_acl)
                if db.write_acl(doc_id, _effective_acl(content_acl, ingest_acl, override)):
                    report.acl_changed.append(inp.source)
                report.unchanged.append(inp.source)
                continue
            parsed = inp.parse()
            content_acl = json.dumps(list(parsed.acl))
            if row is None:
                doc_id = db.add_doc(inp.source, parsed.title, parsed.kind, inp.sha256,
                                    content_acl, ingest_acl, _now())  # fmt: skip
                override = None
                report.added.append(inp.source)
            else:
                doc_id, override = row[0], row[3]
                db.replace_doc(doc_id, parsed.title, parsed.kind, inp.sha256, content_acl,
                               ingest_acl, _now())  # fmt: skip
                report.updated.append(inp.source)
            acl = _effective_acl(content_acl, ingest_acl, override)
            if not acl:
                warnings.warn(
                    f"Document {inp.source} has no access list, so nobody can see it. Add "
                    "--allow group:NAME, a sidecar .acl file or 'allow:' front matter.",
                    KeizokuWarning,
                    stacklevel=2,
                )
            db.write_acl(doc_id, acl)
            for ch in chunk_document(parsed, chunking):
                tokens = analyzer.index_tokens(_index_text(parsed.title, ch.heading_path,
                                                           ch.text))  # fmt: skip
                chunk_id = db.add_chunk(doc_id, ch.position, json.dumps(list(ch.heading_path)),
                                        ch.text, " ".join(tokens))  # fmt: skip
                pending.append((chunk_id, _embed_text(parsed.title, ch.heading_path, ch.text)))
        for source, row in existing.items():
            if source not in seen and _in_scope(source, scopes):
                db.delete_doc(row[0])
                report.removed.append(source)
        changed = report.added or report.updated or report.removed
        gen = db.meta("generation")
        cfg = (requested if rebuild and requested else stored) or requested
        if cfg is None:
            cfg = _default_embedding([t for _, t in pending], report, late_interaction)
        report.embedding = cfg.describe()
        if changed or gen is None:
            embedder = embedder_for(cfg)
            new_tokens: dict[int, np.ndarray] = {}
            if isinstance(embedder, Embedder) and cfg.late_interaction:  # token states too
                vecs, states = embedder.encode_with_tokens([t for _, t in pending])
                new_tokens = {cid: states[i] for i, (cid, _) in enumerate(pending)}
            else:
                vecs = embedder.encode([t for _, t in pending])
            new_vecs = {cid: vecs[i] for i, (cid, _) in enumerate(pending)}
            new_gen = 0 if gen is None else int(gen) + 1
            dim = vecs.shape[1] if len(pending) else embedder.dim
            report.chunks_total = _build_generation(db, name, new_gen, new_vecs, dim,
                                                    new_tokens)  # fmt: skip
            if new_tokens and not TokenIndex.stored(db.folder / f"gen-{new_gen}"):
                report.notes.append(
                    f"Chunks of {name!r} embedded before token states were stored have none, "
                    "so its searches skip the feedback and rerank. Re-ingest all of its "
                    "documents with --rebuild to store them."
                )
            db.publish(new_gen)
            report.chunks_embedded = len(pending) if cfg.backend != "none" else 0
            db.set_meta("generation", str(new_gen))
            db.set_meta("model", cfg.model if cfg.backend != "none" else "none")
            db.set_meta("embedding", cfg.to_json())
            db.set_meta("analyzer", analyzer.to_json())
        else:
            report.chunks_total = db.counts()[1]
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
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


def _requested_embedding(
    embedding: EmbeddingConfig | None,
    model: str | None,
    late_interaction: bool | None,
    stored: EmbeddingConfig | None,
) -> EmbeddingConfig | None:
    """The embedding an ingest asks for: ``embedding``, else ``model`` (local), else the
    stored one when only ``late_interaction`` is given; ``None``: nothing asked (a new
    collection then gets :func:`_default_embedding`)."""
    requested = embedding or (EmbeddingConfig(model=resolve_model_name(model)) if model
                              else None)  # fmt: skip
    base = requested or stored
    if late_interaction is None or base is None:
        return requested
    return replace(base, late_interaction=late_interaction)


def _stored_embedding(db: _DB) -> EmbeddingConfig | None:
    raw = db.meta("embedding")
    if raw is not None:
        return EmbeddingConfig(**json.loads(raw))
    legacy = db.meta("model")  # collections made before per-collection embedding configs
    return EmbeddingConfig(model=legacy) if legacy else None


def _stored_analyzer(db: _DB, name: str) -> Analyzer:
    """The collection's analyzer: as recorded; Porter for one indexed before analyzers were
    recorded (decision 0030); the default for a new one."""
    raw = db.meta("analyzer")
    if raw is not None:
        return Analyzer.from_json(raw, name)
    return DEFAULT_ANALYZER if db.meta("generation") is None else LEGACY_ANALYZER


def _ingest_analyzer(
    db: _DB,
    name: str,
    existing: Iterable[str],
    inputs: Sequence[DocInput],
    scopes: Sequence[str] | None,
    rebuild: bool,
    report: IngestReport,
) -> Analyzer:
    """The analyzer an ingest tokenizes with: the collection's, or the default on a
    ``rebuild`` that re-tokenizes every document. A rebuild that leaves some documents
    untouched keeps the collection's, so that one index never mixes two stemmers."""
    left: list[str] = []
    if rebuild:
        sources = {i.source for i in inputs}
        left = [s for s in existing if s not in sources and not _in_scope(s, scopes)]
        if not left:
            return DEFAULT_ANALYZER
    stored = _stored_analyzer(db, name)
    if not left or stored == DEFAULT_ANALYZER:
        return stored
    report.notes.append(
        f"{len(left)} document(s) of {name!r} are outside this ingest (e.g. {min(left)}), so "
        f"the collection keeps English stemmer {stored.english!r}. Re-ingest all of its "
        f"documents with --rebuild to move it to {DEFAULT_ANALYZER.english!r}."
    )
    return stored


def _default_embedding(
    texts: Sequence[str], report: IngestReport, late_interaction: bool | None = None
) -> EmbeddingConfig:
    """MiniLM (English; ``late_interaction`` unless it is ``False``), or lexical-only when
    most new chunks are Japanese (no server set)."""
    ja = sum(detect_language(t) == "ja" for t in texts)
    if texts and ja >= 0.5 * len(texts) and not os.environ.get("KEIZOKU_EMBED_MODEL"):
        report.notes.append(
            f"{ja} of {len(texts)} chunks are Japanese and no embedding server is configured: "
            "the collection is lexical-only (BM25; the bundled MiniLM is English-only). Set "
            "embeddings.url in a collection config (-c) and re-ingest with --rebuild for "
            "hybrid search."
        )
        return EmbeddingConfig(backend="none", model="none")
    on = late_interaction is not False
    return EmbeddingConfig(model=resolve_model_name(None), late_interaction=on)


def embedding_config(name: str) -> EmbeddingConfig | None:
    """The collection's embedding config (``None`` before its first ingest)."""
    db = connect(name)
    try:
        return _stored_embedding(db)
    finally:
        db.close()


def collection_info(name: str) -> dict[str, object]:
    """Documents, chunks, languages and how the collection is searched."""
    db = connect(name)
    try:
        cfg = _stored_embedding(db)
        analyzer = _stored_analyzer(db, name)
        docs = db.counts()[0]
        texts = db.chunk_texts()
        gen = db.meta("generation")
        tokens = gen is not None and TokenIndex.stored(generation_dir(db, int(gen)))
    finally:
        db.close()
    langs: dict[str, int] = {}
    for t in texts:
        lang = detect_language(t)
        langs[lang] = langs.get(lang, 0) + 1
    lexical_only = cfg is not None and cfg.backend == "none"
    return {
        "collection": name, "documents": docs, "chunks": len(texts), "languages": langs,
        "embedding": cfg.describe() if cfg else None,
        "search": "lexical-only (BM25)" if lexical_only else "hybrid (BM25 + dense)",
        "english_stemmer": analyzer.english,
        "late_interaction": tokens,  # token states stored: hybrid searches rerank
    }  # fmt: skip


def _resolve_source(db: _DB, source: str) -> tuple[int, str]:
    candidates = [source]
    path = Path(source).expanduser()
    if path.exists():
        candidates.insert(0, str(path.resolve()))
    for cand in candidates:
        found = db.find_source(cand)
        if found:
            return found
    raise NotFoundError(
        f"Document {source!r} is not in this collection. List documents with "
        "'keizoku rag docs --collection NAME'."
    )


def set_acl(name: str, source: str, allow: Sequence[str] | None) -> tuple[str, ...]:
    """Override a document's access list (``None`` clears the override); effective now."""
    db = connect(name)
    try:
        db.begin_write()
        doc_id, _ = _resolve_source(db, source)
        override = None if allow is None else json.dumps(list(normalize_acl(allow)))
        content, ingest_ = db.set_override(doc_id, override)
        acl = _effective_acl(content, ingest_, override)
        db.write_acl(doc_id, acl)
        db.commit()
        return acl
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


def list_docs(name: str, identity: Identity | None = None) -> list[dict[str, object]]:
    """Documents with their access lists; with ``identity``, only the ones it may see."""
    db = connect(name)
    try:
        docs = db.doc_list()
        acl: dict[int, list[str]] = {}
        for doc_id, principal in db.acl_pairs():
            acl.setdefault(doc_id, []).append(principal)
    finally:
        db.close()
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
            state = derived[None] = _read_state(kept.db, name)
        if state is None:
            return []
        gen, emb, analyzer = state
        if emb.backend == "none" and cfg.mode != "lexical":
            if cfg.mode == "dense":
                raise UserInputError(
                    f"Collection {name!r} is lexical-only (no embedding server configured), so "
                    "--mode dense has nothing to search. Use --mode lexical or hybrid, or set "
                    "embeddings.url in the collection config and re-ingest with --rebuild."
                )
            cfg = FusionConfig(cfg.alpha, cfg.neighbour, "lexical")
        g = _load_generation(kept.db, gen)
        allowed = derived.get(principals)
        if allowed is None:
            allowed = derived[principals] = _allowed_rows(
                g.row_docs, kept.db.allowed_docs(principals)
            )
        if len(allowed) == 0:
            return []
        lexical = None
        if cfg.mode != "dense":
            lexical = g.lexical.scores(analyzer.query_tokens(query), allowed)
        dense_rows = dense = None
        qtok = None
        if cfg.mode != "lexical":
            embedder = embedder_for(emb)
            tokens = _reranks(g, cfg) and isinstance(embedder, Embedder)
            qvec, qtok = _query_vectors(embedder, query, tokens)
            dense_rows, dense = g.dense.scores(qvec, allowed)
        fused = fuse(allowed, lexical, dense_rows, dense, g.prev_row, g.next_row, cfg)
        if qtok is not None and g.tokens is not None:

            def rescore(vector: np.ndarray) -> np.ndarray:
                rows, scores = g.dense.scores(vector, allowed)
                return fuse(allowed, lexical, rows, scores, g.prev_row, g.next_row, cfg)

            fused = late_interaction(fused, allowed, rescore, g.dense, g.tokens, qvec, qtok)
        order = top_k(fused, k)
        if cfg.mode == "lexical" and lexical is not None:
            # chunks without a query term: raw BM25 0 (min-max would also zero the lowest match)
            order = order[lexical[order] > 0]
        picked = [(int(g.rows[allowed[i]]), float(fused[i])) for i in order]
        return _hits(kept.db, picked, principals)
    finally:
        kept.end()


def _reranks(g: _Generation, cfg: FusionConfig) -> bool:
    """Whether a search of ``g`` feeds back and reranks: hybrid, token states stored."""
    return cfg.mode == "hybrid" and cfg.rerank and g.tokens is not None


def _read_state(db: _DB, name: str) -> tuple[int, EmbeddingConfig, Analyzer] | None:
    """The generation a search reads, the collection's embedding and analyzer (None: nothing
    indexed)."""
    gen = db.meta("generation")
    emb = _stored_embedding(db)
    if gen is None or emb is None:
        return None
    return int(gen), emb, _stored_analyzer(db, name)


def _hits(db: _DB, picked: list[tuple[int, float]], principals: Sequence[str]) -> list[Hit]:
    if not picked:
        return []
    # the access list is checked again here, in SQL, as a second guard
    rows = db.hit_rows([cid for cid, _ in picked], principals)
    by_id = {r[0]: r for r in rows}
    hits: list[Hit] = []
    for cid, score in picked:
        r = by_id.get(cid)
        if r is not None:
            hits.append(
                Hit(len(hits) + 1, score, cid, r[1], r[2], tuple(json.loads(r[3])), r[4], r[5])
            )
    return hits
