"""Retrieval quality, latency and ingest throughput of keizoku's knowledge assistant.

Quality: XQuAD English (240 paragraphs, 1190 questions) split into sentences; a
question's relevant sentence is the one holding its answer span; every sentence of
every paragraph is in the corpus. Each paragraph is ingested as a document (title =
article) chunked one sentence per chunk. Fusion weights are tuned on the questions of
even-numbered articles (dev) and reported on the odd-numbered ones (test) and on all.

Latency: p50/p95 of ``search()`` (hybrid, ACL filter on, ~25 % of rows visible) on 10k
and 100k synthetic chunks with random embeddings. Throughput: real ingest (parse,
chunk, embed, index) of the XQuAD paragraphs with the default chunking.

    .venv/bin/python bench/rag_retrieval.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the workplace's shared data sets (KEIZOKU_SHARED_DATASETS, else ../shared/datasets)
SHARED = Path(os.environ.get("KEIZOKU_SHARED_DATASETS")
              or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")  # fmt: skip
DATA = SHARED / "qa" / "xquad"


def load_xquad(path: Path) -> tuple[list[dict], list[dict]]:
    """Paragraph docs (title, sentences) and questions (text, doc index, sentence, dev flag)."""
    from keizoku.rag.text import split_sentences

    data = json.loads(path.read_text())["data"]
    paragraphs, questions = [], []
    for a_i, art in enumerate(data):
        for para in art["paragraphs"]:
            ctx = para["context"]
            sents = split_sentences(ctx)
            spans, pos = [], 0
            for s in sents:
                start = ctx.find(s, pos)
                spans.append((start, start + len(s)))
                pos = start + len(s)
            p_i = len(paragraphs)
            paragraphs.append({"title": art["title"].replace("_", " "), "sentences": sents})
            for qa in para["qas"]:
                start = qa["answers"][0]["answer_start"]
                s_i = next((i for i, (lo, hi) in enumerate(spans) if lo <= start < hi), None)
                if s_i is None:
                    s_i = max(i for i, (lo, _) in enumerate(spans) if lo <= start)
                questions.append({"q": qa["question"], "doc": p_i, "sent": s_i,
                                  "dev": a_i % 2 == 0})  # fmt: skip
    return paragraphs, questions


def ndcg_recall(ranked: list[int], rel: int, k: int = 10) -> tuple[float, float]:
    for i, r in enumerate(ranked[:k]):
        if r == rel:
            return 1.0 / np.log2(i + 2), 1.0
    return 0.0, 0.0


def quality(quick: bool) -> dict:
    from keizoku.rag import collection as col
    from keizoku.rag.chunk import ChunkConfig
    from keizoku.rag.collection import DocInput
    from keizoku.rag.embed import get_embedder
    from keizoku.rag.index import FusionConfig, fuse, top_k
    from keizoku.rag.parse import ParsedDoc, Section
    from keizoku.rag.text import DEFAULT_ANALYZER

    paragraphs, questions = load_xquad(DATA / "xquad.en.json")
    if quick:
        questions = questions[::4]
    inputs = [
        DocInput(f"xq:{i}", str(i), lambda p=p: ParsedDoc(p["title"], "text",
                 [Section((), " ".join(p["sentences"]))]), ("group:everyone",))
        for i, p in enumerate(paragraphs)
    ]  # fmt: skip
    report = col.ingest("xquad-sent", inputs, chunking=ChunkConfig(max_words=1, overlap_words=0))
    db = col.connect("xquad-sent")
    conn = db.conn
    gen = int(db.meta("generation") or 0)
    row_key = {}
    for cid, src, pos in conn.execute(
        "SELECT c.id, d.source, c.position FROM chunks c JOIN docs d ON d.id = c.doc_id"
    ):
        row_key[cid] = (int(src[3:]), pos)
    conn.close()
    g = col._load_generation(db, gen)
    keys = [row_key[int(c)] for c in g.rows]
    key_to_row = {k: i for i, k in enumerate(keys)}
    n_expected = sum(len(p["sentences"]) for p in paragraphs)
    allowed = np.arange(len(g.rows))
    emb = get_embedder()
    qv = emb.encode([q["q"] for q in questions])
    lex = [g.lexical.scores(DEFAULT_ANALYZER.query_tokens(q["q"]), allowed) for q in questions]
    den = [g.dense.scores(qv[i], allowed)[1] for i in range(len(questions))]
    rel = [key_to_row[(q["doc"], q["sent"])] for q in questions]

    def run(cfg: FusionConfig, subset: str) -> dict:
        nd, rc = [], []
        for i, q in enumerate(questions):
            if (subset == "dev" and not q["dev"]) or (subset == "test" and q["dev"]):
                continue
            s = fuse(allowed, lex[i], allowed, den[i], g.prev_row, g.next_row, cfg)
            a, b = ndcg_recall(top_k(s, 10).tolist(), rel[i])
            nd.append(a)
            rc.append(b)
        return {"ndcg@10": float(np.mean(nd)), "recall@10": float(np.mean(rc)), "n": len(nd)}

    grid = [(a, b) for a in np.round(np.arange(0.2, 0.81, 0.05), 2) for b in (0.0, 0.1, 0.2, 0.3)]
    dev = {(a, b): run(FusionConfig(alpha=a, neighbour=b), "dev")["ndcg@10"] for a, b in grid}
    best_a, best_b = max(dev, key=dev.__getitem__)
    rows = {}
    for label, cfg in [
        ("BM25 (stemmed, stopwords)", FusionConfig(mode="lexical")),
        ("dense all-MiniLM-L6-v2", FusionConfig(mode="dense")),
        ("hybrid alpha=0.5, no neighbours", FusionConfig(alpha=0.5)),
        (f"hybrid alpha={best_a}, neighbour={best_b} (dev-tuned)",
         FusionConfig(alpha=best_a, neighbour=best_b)),
        ("keizoku default", col.DEFAULT_FUSION),
    ]:  # fmt: skip
        rows[label] = {"all": run(cfg, "all"), "test": run(cfg, "test")}
    # the default through the public search() path (ACL filter, SQLite, embedding per query)
    from keizoku.rag.access import Identity

    who = Identity("bench", ())
    t0 = time.perf_counter()
    nd = []
    for i, q in enumerate(questions[:200]):
        hits = col.search("xquad-sent", q["q"], who, k=10)
        ranked = [key_to_row[(int(h.source[3:]), h.position)] for h in hits]
        nd.append(ndcg_recall(ranked, rel[i])[0])
    per_q = (time.perf_counter() - t0) / min(200, len(questions))
    return {
        "corpus_sentences": n_expected, "chunks": report.chunks_total,
        "questions": len(questions), "dev_best": {"alpha": best_a, "neighbour": best_b,
                                                  "ndcg@10": dev[(best_a, best_b)]},
        "dev_grid": {f"{a},{b}": v for (a, b), v in dev.items()},
        "rows": rows, "search_path_ndcg@10_first200": float(np.mean(nd)),
        "search_path_seconds_per_query": per_q,
    }  # fmt: skip


def synthetic(name: str, n_chunks: int, seed: int = 0, tokens: int = 20) -> None:
    """A collection of ``n_chunks`` random chunks (10 a document) with random embeddings and
    ``tokens`` random token states a chunk (XQuAD sentences keep 20.3 on average)."""
    from keizoku.rag import collection as col
    from keizoku.rag.embed import EmbeddingConfig, get_embedder

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    db = col.connect(name, create=True)
    conn = db.conn
    conn.execute("BEGIN")
    n_docs = n_chunks // 10
    conn.executemany("INSERT INTO docs (id, source, title, kind, sha256, ingested_at) "
                     "VALUES (?, ?, ?, 'text', 'x', 'now')",
                     [(d, f"syn:{d}", f"doc {d}") for d in range(1, n_docs + 1)])  # fmt: skip
    acl = []
    for d in range(1, n_docs + 1):
        for g in rng.choice(20, size=rng.integers(1, 3), replace=False):
            acl.append((d, f"group:g{g}"))
    conn.executemany("INSERT OR IGNORE INTO acl VALUES (?, ?)", acl)
    words = rng.choice(len(vocab), size=(n_chunks, 60), p=zipf)
    conn.executemany(
        "INSERT INTO chunks (id, doc_id, position, heading_path, text, tokens) "
        "VALUES (?, ?, ?, '[]', ?, ?)",
        [(c + 1, c // 10 + 1, c % 10, t, t) for c in range(n_chunks)
         for t in [" ".join(vocab[w] for w in words[c])]],
    )  # fmt: skip
    vecs = rng.standard_normal((n_chunks, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    emb = get_embedder()
    states = {}
    for c in range(n_chunks if tokens else 0):
        block = rng.standard_normal((tokens, 384)).astype(np.float32)
        states[c + 1] = (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float16)
    col._build_generation(db, name, 0, {c + 1: vecs[c] for c in range(n_chunks)}, 384, states)
    db.set_meta("generation", "0")
    db.set_meta("model", emb.name)
    db.set_meta("embedding", EmbeddingConfig(model=emb.name).to_json())
    conn.execute("COMMIT")
    conn.close()


def latency(sizes: list[int], n_queries: int) -> dict:
    from keizoku.rag import collection as col
    from keizoku.rag.access import Identity
    from keizoku.rag.embed import get_embedder
    from keizoku.rag.index import FusionConfig

    emb = get_embedder()
    out = {}
    who = Identity("u", ("g1", "g2", "g3", "g4", "g5"))
    rng = np.random.default_rng(1)
    for n in sizes:
        t0 = time.perf_counter()
        synthetic(f"syn{n}", n)
        build = time.perf_counter() - t0
        col.search(f"syn{n}", "w1 w2", who)  # load the generation once
        times, lex_times, emb_times, plain_times = [], [], [], []
        no_rerank = FusionConfig(col.DEFAULT_FUSION.alpha, col.DEFAULT_FUSION.neighbour,
                                 rerank=False)  # fmt: skip
        for _ in range(n_queries):
            q = " ".join(f"w{i}" for i in rng.integers(0, 2000, size=6))
            t = time.perf_counter()
            col.search(f"syn{n}", q, who, k=10)
            times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            col.search(f"syn{n}", q, who, k=10, fusion=FusionConfig(mode="lexical"))
            lex_times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            col.search(f"syn{n}", q, who, k=10, fusion=no_rerank)
            plain_times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            emb.encode([q])
            emb_times.append((time.perf_counter() - t) * 1000)
        db = col.connect(f"syn{n}")
        folder = col.generation_dir(db, 0)
        db.close()
        sizes_mb = {f.name: f.stat().st_size / 2**20 for f in folder.iterdir() if f.is_file()}
        out[str(n)] = {"p50_ms": float(np.percentile(times, 50)),
                       "p95_ms": float(np.percentile(times, 95)),
                       "lexical_only_p50_ms": float(np.percentile(lex_times, 50)),
                       "lexical_only_p95_ms": float(np.percentile(lex_times, 95)),
                       "no_rerank_p50_ms": float(np.percentile(plain_times, 50)),
                       "no_rerank_p95_ms": float(np.percentile(plain_times, 95)),
                       "query_embedding_p50_ms": float(np.percentile(emb_times, 50)),
                       "build_s": build, "files_mb": sizes_mb}  # fmt: skip
    return out


def throughput() -> dict:
    from keizoku.rag import collection as col
    from keizoku.rag.collection import DocInput
    from keizoku.rag.parse import ParsedDoc, Section

    data = json.loads((DATA / "xquad.en.json").read_text())["data"]
    inputs = [
        DocInput(f"tp:{a}:{i}", f"{a}:{i}", lambda t=art["title"], c=p["context"]: ParsedDoc(
            t, "text", [Section((), c)]), ("group:everyone",))
        for a, art in enumerate(data) for i, p in enumerate(art["paragraphs"])
    ]  # fmt: skip
    report = col.ingest("throughput", inputs)
    return {"docs": len(inputs), "chunks": report.chunks_total, "seconds": report.seconds,
            "chunks_per_s": report.chunks_total / report.seconds}  # fmt: skip


def xquad_beir(quick: bool) -> dict:
    """XQuAD-en split into sentences as a plain BEIR corpus: one document a sentence, no title.

    The real ``ingest_beir`` and ``search()`` (access filter, one query embedding a
    question); a question's relevant document is the sentence holding its answer span.
    Dev = questions of even-numbered articles, test = odd-numbered ones.
    """
    from keizoku.rag import collection as col
    from keizoku.rag.access import Identity
    from keizoku.rag.evaluate import ingest_beir
    from keizoku.rag.index import FusionConfig
    from keizoku.rag.text import DEFAULT_ANALYZER, LEGACY_ANALYZER

    paragraphs, questions = load_xquad(DATA / "xquad.en.json")
    if quick:
        questions = questions[::4]
    folder = Path(tempfile.mkdtemp(prefix="xquad-beir-"))
    ids = {(p, j): f"{p}-{j}" for p, para in enumerate(paragraphs)
           for j in range(len(para["sentences"]))}  # fmt: skip
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for (p, j), doc_id in ids.items():
            row = {"_id": doc_id, "title": "", "text": paragraphs[p]["sentences"][j]}
            fh.write(json.dumps(row) + "\n")
    report = ingest_beir("xquad-beir", folder / "corpus.jsonl", ["group:everyone"])
    texts = [paragraphs[p]["sentences"][j] for p, j in ids]
    qtext = [q["q"] for q in questions]
    rel = [ids[(q["doc"], q["sent"])] for q in questions]
    dev = [q["dev"] for q in questions]
    who = Identity("bench", ())
    out: dict = {"sentences": len(ids), "chunks": report.chunks_total, "questions": len(qtext)}
    no_rerank = FusionConfig(col.DEFAULT_FUSION.alpha, col.DEFAULT_FUSION.neighbour, rerank=False)
    for label, cfg in [("keizoku hybrid (default)", None),
                       ("keizoku hybrid, no feedback/rerank (before s11)", no_rerank),
                       ("keizoku lexical", FusionConfig(mode="lexical")),
                       ("keizoku dense (MiniLM)", FusionConfig(mode="dense"))]:  # fmt: skip
        ranked, times = [], []
        for q in qtext:
            t = time.perf_counter()
            hits = col.search("xquad-beir", q, who, k=10, fusion=cfg)
            times.append((time.perf_counter() - t) * 1000)
            ranked.append([h.source[len("beir:") :] for h in hits])
        out[label] = _metrics(ranked, rel, times, dev)
    row_id = list(ids.values())
    for label, tok in [
        ("BM25 whitespace \\w+", _whitespace),
        ("BM25 character bigrams", _bigrams),
        ("BM25 Porter + stop words (before 0030)", LEGACY_ANALYZER.index_tokens),
        ("BM25 Snowball English + stop words (0030)", DEFAULT_ANALYZER.index_tokens),
    ]:
        out[label] = _plain_bm25(texts, qtext, [row_id.index(r) for r in rel], tok, dev)
    return out


# --- Japanese: JSQuAD ----------------------------------------------------------------------

JSQUAD = DATA.parent / "jsquad" / "valid-v1.3.json"


def load_jsquad(path: Path) -> tuple[list[dict], list[dict]]:
    """Paragraphs (title, body, sentences) and questions (text, paragraph, sentence)."""
    from keizoku.rag.text import split_sentences

    paragraphs, questions = [], []
    for a_i, art in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        for para in art["paragraphs"]:
            ctx = para["context"]
            head = f"{art['title']} [SEP] "
            body = ctx[len(head) :] if ctx.startswith(head) else ctx
            shift = len(ctx) - len(body)
            sents = split_sentences(body)
            starts, pos = [], 0
            for sent in sents:
                pos = body.find(sent, pos)
                starts.append(pos)
                pos += len(sent)
            p_i = len(paragraphs)
            paragraphs.append({"title": art["title"], "body": body, "sentences": sents})
            for qa in para["qas"]:
                start = qa["answers"][0]["answer_start"] - shift
                s_i = max([i for i, st in enumerate(starts) if st <= start] or [0])
                questions.append({"q": qa["question"], "doc": p_i, "sent": s_i,
                                  "dev": a_i % 2 == 0})  # fmt: skip
    return paragraphs, questions


def _metrics(ranked: list[list], rel: list, times_ms: list[float], dev: list | None = None) -> dict:
    """nDCG@10, Recall@1/@10 (all; with ``dev`` flags also the dev and held-out test halves)."""
    nd, r1, r10 = [], [], []
    for got, want in zip(ranked, rel, strict=True):
        a, b = ndcg_recall(got, want)
        nd.append(a)
        r10.append(b)
        r1.append(float(bool(got) and got[0] == want))
    out = {"ndcg@10": float(np.mean(nd)), "recall@1": float(np.mean(r1)),
           "recall@10": float(np.mean(r10)), "queries": len(rel)}  # fmt: skip
    if dev is not None:
        d = np.asarray(dev, dtype=bool)
        out["ndcg@10 dev"] = float(np.mean(np.asarray(nd)[d]))
        out["ndcg@10 test"] = float(np.mean(np.asarray(nd)[~d]))
    if times_ms:
        out["p50_ms"] = float(np.percentile(times_ms, 50))
        out["p95_ms"] = float(np.percentile(times_ms, 95))
    return out


def _plain_bm25(texts: list[str], questions: list[str], rel: list, tok, dev: list) -> dict:
    """BM25 (same scorer) over ``texts`` with tokenizer ``tok``, no headers, no analysis."""
    from keizoku.rag.index import LexicalIndex, top_k

    index = LexicalIndex.build([tok(t) for t in texts])
    allowed = np.arange(len(texts))
    ranked, times = [], []
    for q in questions:
        t = time.perf_counter()
        ranked.append(top_k(index.scores(tok(q), allowed), 10).tolist())
        times.append((time.perf_counter() - t) * 1000)
    return _metrics(ranked, rel, times, dev)


def _whitespace(text: str) -> list[str]:
    import re

    return re.findall(r"\w+", text.lower())


def _bigrams(text: str) -> list[str]:
    import re
    import unicodedata

    out = []
    for run in re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower()):
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return out


def jsquad(quick: bool) -> dict:
    """Question -> paragraph and question -> sentence on JSQuAD (keizoku vs plain BM25)."""
    from keizoku.rag import collection as col
    from keizoku.rag.access import Identity
    from keizoku.rag.chunk import ChunkConfig
    from keizoku.rag.collection import DocInput
    from keizoku.rag.parse import ParsedDoc, Section

    paragraphs, questions = load_jsquad(JSQUAD)
    if quick:
        questions = questions[::4]
    who = Identity("bench", ())
    out: dict = {"paragraphs": len(paragraphs), "questions": len(questions)}
    qtext = [q["q"] for q in questions]
    dev = [q["dev"] for q in questions]
    for level in ("paragraph", "sentence"):
        name = f"jsquad-{level}"
        if level == "paragraph":
            chunking = ChunkConfig()
            texts = [p["title"] + " " + p["body"] for p in paragraphs]
            rel: list = [q["doc"] for q in questions]
        else:  # one sentence a chunk
            chunking = ChunkConfig(max_words=1, overlap_words=0, max_chars=1, overlap_chars=0,
                                   hard_words=10**6, hard_chars=10**6)  # fmt: skip
            keys = [(i, j) for i, p in enumerate(paragraphs) for j in range(len(p["sentences"]))]
            texts = [paragraphs[i]["sentences"][j] for i, j in keys]
            key_row = {k: r for r, k in enumerate(keys)}
            rel = [key_row[(q["doc"], q["sent"])] for q in questions]
        inputs = [
            DocInput(f"js:{i}", str(i), lambda p=p, lv=level: ParsedDoc(p["title"], "text", [
                Section((), "\n".join(p["sentences"]) if lv == "sentence" else p["body"])]),
                ("group:everyone",))
            for i, p in enumerate(paragraphs)
        ]  # fmt: skip
        report = col.ingest(name, inputs, chunking=chunking)
        db = col.connect(name)
        conn = db.conn
        pos_of = {
            cid: (int(src[3:]), pos)
            for cid, src, pos in conn.execute(
                "SELECT c.id, d.source, c.position FROM chunks c JOIN docs d ON d.id = c.doc_id"
            )
        }
        conn.close()
        col.search(name, qtext[0], who)  # load the generation and the analyser once
        ranked, times = [], []
        for q in qtext:
            t = time.perf_counter()
            hits = col.search(name, q, who, k=10 if level == "sentence" else 30)
            times.append((time.perf_counter() - t) * 1000)
            if level == "paragraph":
                ranked.append(list(dict.fromkeys(int(h.source[3:]) for h in hits))[:10])
            else:
                ranked.append([key_row.get(pos_of[h.chunk_id], -1) for h in hits])
        out[level] = {
            "chunks": report.chunks_total, "embedding": report.embedding,
            "keizoku (search(), lexical-only)": _metrics(ranked, rel, times, dev),
            "BM25 whitespace \\w+": _plain_bm25(texts, qtext, rel, _whitespace, dev),
            "BM25 character bigrams": _plain_bm25(texts, qtext, rel, _bigrams, dev),
        }  # fmt: skip
    return out


def jsquad_latency(n_chunks: int, n_queries: int) -> dict:
    """search() p50/p95 on ``n_chunks`` real JSQuAD sentences (repeated), ACL filter on."""
    from keizoku.rag import collection as col
    from keizoku.rag.access import Identity
    from keizoku.rag.embed import EmbeddingConfig
    from keizoku.rag.text import tokenize

    paragraphs, questions = load_jsquad(JSQUAD)
    sents = [s for p in paragraphs for s in p["sentences"]]
    toks = [" ".join(tokenize(s)) for s in sents]
    rng = np.random.default_rng(2)
    name = f"jsyn{n_chunks}"
    db = col.connect(name, create=True)
    conn = db.conn
    conn.execute("BEGIN")
    n_docs = n_chunks // 10
    conn.executemany("INSERT INTO docs (id, source, title, kind, sha256, ingested_at) "
                     "VALUES (?, ?, ?, 'text', 'x', 'now')",
                     [(d, f"syn:{d}", f"doc {d}") for d in range(1, n_docs + 1)])  # fmt: skip
    conn.executemany("INSERT OR IGNORE INTO acl VALUES (?, ?)", [
        (d, f"group:g{g}") for d in range(1, n_docs + 1)
        for g in rng.choice(20, size=rng.integers(1, 3), replace=False)])  # fmt: skip
    pick = rng.integers(0, len(sents), size=n_chunks)
    conn.executemany(
        "INSERT INTO chunks (id, doc_id, position, heading_path, text, tokens) "
        "VALUES (?, ?, ?, '[]', ?, ?)",
        [(c + 1, c // 10 + 1, c % 10, sents[i], toks[i]) for c, i in enumerate(pick.tolist())],
    )
    col._build_generation(db, name, 0, {c + 1: np.zeros(0, np.float32)
                                          for c in range(n_chunks)}, 0)  # fmt: skip
    db.set_meta("generation", "0")
    db.set_meta("model", "none")
    db.set_meta("embedding", EmbeddingConfig(backend="none", model="none").to_json())
    conn.execute("COMMIT")
    conn.close()
    who = Identity("u", ("g1", "g2", "g3", "g4", "g5"))
    col.search(name, questions[0]["q"], who)
    times = []
    for q in questions[:n_queries]:
        t = time.perf_counter()
        col.search(name, q["q"], who, k=10)
        times.append((time.perf_counter() - t) * 1000)
    return {"chunks": n_chunks, "queries": len(times), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95))}  # fmt: skip


PARTS = ("xquad", "xquad-beir", "latency", "ingest", "jsquad", "jsquad-latency")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quarter of the questions, 10k only")
    ap.add_argument("--out", default=None, help="write results as JSON here")
    ap.add_argument("--only", action="append", choices=PARTS,
                    help="run only these parts (repeatable; default: all)")  # fmt: skip
    args = ap.parse_args()
    parts = args.only or list(PARTS)
    need = [DATA / "xquad.en.json"] if {"xquad", "xquad-beir", "ingest"} & set(parts) else []
    need += [JSQUAD] if {"jsquad", "jsquad-latency"} & set(parts) else []
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        print(
            f"missing {', '.join(missing)} (see /work/shared/datasets/README.md)", file=sys.stderr
        )
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["KEIZOKU_HOME"] = tempfile.mkdtemp(prefix="keizoku-bench-")
    results: dict = {}
    if "jsquad" in parts:
        results["jsquad"] = jsquad(args.quick)
        _print_jsquad(results["jsquad"])
    if "jsquad-latency" in parts:
        sizes = [10_000] if args.quick else [10_000, 100_000]
        results["jsquad_latency"] = [jsquad_latency(n, 50 if args.quick else 300) for n in sizes]
        for r in results["jsquad_latency"]:
            print(
                f"JSQuAD sentences, {r['chunks']} chunks, ACL filter on, lexical search(): "
                f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms ({r['queries']} queries)"
            )
    if "xquad" in parts:
        results["quality"] = quality(args.quick)
        _print_xquad(results["quality"])
    if "xquad-beir" in parts:
        results["xquad_beir"] = xquad_beir(args.quick)
        _print_table(f"XQuAD-en as plain BEIR sentences ({results['xquad_beir']['sentences']} "
                     f"sentences, no titles; {results['xquad_beir']['questions']} questions)",
                     results["xquad_beir"])  # fmt: skip
    if "latency" in parts:
        results["latency"] = latency([10_000] if args.quick else [10_000, 100_000],
                                     30 if args.quick else 100)  # fmt: skip
        _print_latency(results["latency"])
    if "ingest" in parts:
        results["ingest"] = throughput()
        i = results["ingest"]
        print(
            f"\ningest: {i['docs']} docs, {i['chunks']} chunks in {i['seconds']:.1f} s = "
            f"{i['chunks_per_s']:.1f} chunks/s"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


def _print_jsquad(js: dict) -> None:
    print(f"\nJSQuAD retrieval: {js['paragraphs']} paragraphs, {js['questions']} questions")
    for level in ("paragraph", "sentence"):
        r = js[level]
        _print_table(f"question -> {level} ({r['chunks']} chunks; embeddings: {r['embedding']})",
                     r)  # fmt: skip


def _print_table(title: str, rows: dict) -> None:
    """One markdown row per retriever; dev = even articles, test = odd (held out)."""
    print(f"\n{title}\n")
    print("| retriever | nDCG@10 | nDCG@10 dev / test | Recall@1 | Recall@10 | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for label, m in rows.items():
        if isinstance(m, dict):
            print(
                f"| {label} | {m['ndcg@10']:.3f} | {m['ndcg@10 dev']:.3f} / "
                f"{m['ndcg@10 test']:.3f} | {m['recall@1']:.3f} | {m['recall@10']:.3f} | "
                f"{m['p50_ms']:.2f} | {m['p95_ms']:.2f} |"
            )


def _print_xquad(q: dict) -> None:
    print(
        f"\nXQuAD-en sentence retrieval: {q['chunks']} sentences, {q['questions']} questions "
        f"(test = odd articles; weights tuned on even articles: {q['dev_best']})\n"
    )
    print("| retriever | nDCG@10 all | recall@10 all | nDCG@10 test | recall@10 test |")
    print("|---|---|---|---|---|")
    for label, r in q["rows"].items():
        print(f"| {label} | {r['all']['ndcg@10']:.3f} | {r['all']['recall@10']:.3f} | "
              f"{r['test']['ndcg@10']:.3f} | {r['test']['recall@10']:.3f} |")  # fmt: skip
    print(
        f"\nsearch() path, first 200 questions: nDCG@10 {q['search_path_ndcg@10_first200']:.3f},"
        f" {q['search_path_seconds_per_query'] * 1000:.1f} ms/query\n"
    )


def _print_latency(latency_: dict) -> None:
    print(
        "| chunks | hybrid p50 / p95 ms | hybrid without feedback/rerank p50 / p95 ms |"
        " lexical-only p50 / p95 ms | query embedding p50 ms | files MB |\n"
        "|---|---|---|---|---|---|"
    )
    for n, r in latency_.items():
        files = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["files_mb"].items()))
        print(
            f"| {n} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} | {r['no_rerank_p50_ms']:.1f} / "
            f"{r['no_rerank_p95_ms']:.1f} | {r['lexical_only_p50_ms']:.1f} / "
            f"{r['lexical_only_p95_ms']:.1f} | {r['query_embedding_p50_ms']:.1f} | {files} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
