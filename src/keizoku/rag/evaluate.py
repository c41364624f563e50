"""Retrieval and answer evaluation on BEIR-format and SQuAD-format sets.

BEIR: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``)
and a qrels TSV (``query-id``, ``corpus-id``, ``score``, with a header line). Metrics:
nDCG@10, recall@k, MRR@10 at document level (a document's rank is its best chunk's).

SQuAD: ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``. Metrics:
whether the retrieved context holds an answer span (hit@k), exact match / F1 of the
extractive answer against the gold answers (the extractive answer is a sentence, so
exact match is expected to be low; F1 shows how focused it is), and citation precision
(the share of cited passages that contain a gold answer). Japanese answers (kana/kanji)
are compared after NFKC with punctuation and spaces removed, and F1 counts characters
(there are no words to count); English answers follow the SQuAD script (lowercase, no
punctuation or articles, word F1).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keizoku.errors import UserInputError
from keizoku.rag.access import Identity, normalize_acl
from keizoku.rag.collection import DocInput, IngestReport, ingest, search
from keizoku.rag.index import FusionConfig
from keizoku.rag.parse import ParsedDoc, Section
from keizoku.rag.text import has_japanese

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "beir_inputs",
    "squad_inputs",
    "load_beir_queries",
    "load_qrels",
    "ndcg_at_k",
    "eval_beir",
    "eval_squad",
    "squad_f1",
    "squad_em",
]


def _read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserInputError(f"{what} file {path} does not exist. Pass a BEIR {what} .jsonl file.")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserInputError(f"Line {n} of {path} is not JSON ({exc.msg}).") from exc
            if "_id" not in row:
                raise UserInputError(f"Line {n} of {path} has no '_id'. BEIR rows need '_id'.")
            rows.append(row)
    return rows


def _doc_input(source: str, title: str, text: str, allow: tuple[str, ...]) -> DocInput:
    digest = hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()
    # no title: none in the indexed text either (the source key is not the document's words)
    return DocInput(source, digest, lambda: ParsedDoc(title, "text", [Section((), text)]), allow)


def beir_inputs(corpus: str | Path, allow: Sequence[str]) -> list[DocInput]:
    """One document per corpus row, keyed ``beir:<_id>``."""
    acl = normalize_acl(allow)
    return [
        _doc_input(f"beir:{r['_id']}", str(r.get("title") or ""), str(r.get("text") or ""), acl)
        for r in _read_jsonl(Path(corpus), "corpus")
    ]


def squad_inputs(path: str | Path, allow: Sequence[str]) -> list[DocInput]:
    """One document per SQuAD paragraph, keyed ``squad:<title>#<n>``."""
    acl = normalize_acl(allow)
    out = []
    for art in _load_squad(Path(path)):
        title = str(art.get("title", "")).replace("_", " ")
        for i, para in enumerate(art.get("paragraphs", [])):
            context = str(para["context"])
            head = f"{art.get('title')} [SEP] "  # JSQuAD contexts open with the title
            if context.startswith(head):
                context = context[len(head) :]
            out.append(_doc_input(f"squad:{art.get('title')}#{i}", title, context, acl))
    return out


def ingest_beir(name: str, corpus: str | Path, allow: Sequence[str]) -> IngestReport:
    return ingest(name, beir_inputs(corpus, allow))


def load_beir_queries(path: str | Path) -> dict[str, str]:
    return {str(r["_id"]): str(r.get("text", "")) for r in _read_jsonl(Path(path), "queries")}


def load_qrels(path: str | Path) -> dict[str, dict[str, float]]:
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"Qrels file {p} does not exist. Pass a BEIR qrels .tsv file.")
    qrels: dict[str, dict[str, float]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.strip().split("\t")
        if not line.strip() or (n == 1 and parts[0] == "query-id"):
            continue
        if len(parts) < 3:
            raise UserInputError(
                f"Line {n} of {p} has {len(parts)} fields; qrels need "
                "'query-id<TAB>corpus-id<TAB>score'."
            )
        qrels.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return qrels


def ndcg_at_k(ranked: Sequence[str], rels: dict[str, float], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], rels: dict[str, float], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at_k(ranked: Sequence[str], rels: dict[str, float], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def retrieval_metrics(
    runs: dict[str, list[str]], qrels: dict[str, dict[str, float]], ks: Sequence[int] = (10, 100)
) -> dict[str, float]:
    qids = [q for q in qrels if q in runs]
    if not qids:
        return {"queries": 0}
    out: dict[str, float] = {"queries": len(qids)}
    out["ndcg@10"] = sum(ndcg_at_k(runs[q], qrels[q]) for q in qids) / len(qids)
    out["mrr@10"] = sum(mrr_at_k(runs[q], qrels[q]) for q in qids) / len(qids)
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at_k(runs[q], qrels[q], k) for q in qids) / len(qids)
    return out


def _doc_ranking(sources: Sequence[str], prefix: str) -> list[str]:
    return list(dict.fromkeys(s[len(prefix) :] if s.startswith(prefix) else s for s in sources))


def eval_beir(
    collection: str,
    queries: str | Path,
    qrels: str | Path,
    identity: Identity,
    k: int = 100,
    fusion: FusionConfig | None = None,
) -> dict[str, float]:
    """nDCG@10, MRR@10, recall@10 and recall@k of ``collection`` on a BEIR query set."""
    qtext = load_beir_queries(queries)
    rels = load_qrels(qrels)
    runs: dict[str, list[str]] = {}
    for qid in rels:
        if qid in qtext:
            hits = search(collection, qtext[qid], identity, k=k, fusion=fusion)
            runs[qid] = _doc_ranking([h.source for h in hits], "beir:")
    return retrieval_metrics(runs, rels, ks=sorted({10, k}))


# --- SQuAD ------------------------------------------------------------------------------------


def _load_squad(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserInputError(f"SQuAD file {path} does not exist. Pass a SQuAD-format .json file.")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserInputError(f"{path} is not SQuAD format: it needs a top-level 'data' list.")
    return list(data["data"])


def _normalize(text: str) -> str:
    if has_japanese(text):
        text = unicodedata.normalize("NFKC", text).lower()
        return "".join(
            ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "S"))
            and not ch.isspace()
        )  # fmt: skip
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _units(text: str, japanese: bool) -> list[str]:
    """What F1 counts: characters for Japanese, words otherwise (after ``_normalize``)."""
    norm = _normalize(text)
    return list(norm.replace(" ", "")) if japanese else norm.split()


def squad_em(pred: str, golds: Sequence[str]) -> float:
    return float(any(_normalize(pred) == _normalize(g) for g in golds))


def squad_f1(pred: str, golds: Sequence[str]) -> float:
    """Best F1 over ``golds``: character F1 when the gold answer is Japanese, else word F1."""
    best = 0.0
    for gold in golds:
        japanese = has_japanese(gold)
        ptoks, gtoks = _units(pred, japanese), _units(gold, japanese)
        common = sum((Counter(ptoks) & Counter(gtoks)).values())
        if common:
            p, r = common / len(ptoks), common / len(gtoks)
            best = max(best, 2 * p * r / (p + r))
    return best


def eval_squad(
    collection: str,
    path: str | Path,
    identity: Identity,
    k: int = 5,
    limit: int | None = None,
    fusion: FusionConfig | None = None,
) -> dict[str, float]:
    """hit@k of an answer span in the retrieved chunks, EM/F1 of extractive answers, and
    citation precision (cited passages holding a gold answer / cited passages)."""
    from keizoku.rag.answer import extractive
    from keizoku.rag.collection import embedding_config
    from keizoku.rag.embed import embedder_for

    emb = embedding_config(collection)
    embedder = embedder_for(emb) if emb is not None else None
    n = hits_ok = cited_n = 0
    em = f1 = cite_prec = 0.0
    seen: dict[str, np.ndarray] = {}  # questions share passages: each sentence encoded once
    for art in _load_squad(Path(path)):
        for para in art.get("paragraphs", []):
            for qa in para.get("qas", []):
                if limit is not None and n >= limit:
                    break
                golds = [a["text"] for a in qa.get("answers", [])]
                if not golds:
                    continue
                hits = search(collection, qa["question"], identity, k=k, fusion=fusion)
                n += 1
                norm = [_normalize(h.text) for h in hits]
                hits_ok += any(_normalize(g) in t for g in golds for t in norm)
                answer = extractive(qa["question"], hits, embedder, seen)
                text = re.sub(r"\s*\[\d+\]", "", answer.answer)
                em += squad_em(text, golds)
                f1 += squad_f1(text, golds)
                texts = {h.chunk_id: _normalize(h.text) for h in hits}
                cited = [texts.get(c.chunk_id, "") for c in answer.citations]
                if cited:
                    cited_n += 1
                    good = sum(any(_normalize(g) in t for g in golds) for t in cited)
                    cite_prec += good / len(cited)
    if n == 0:
        return {"questions": 0}
    return {
        "questions": n, f"context_hit@{k}": hits_ok / n, "exact_match": em / n, "f1": f1 / n,
        "citation_precision": cite_prec / cited_n if cited_n else 0.0,
    }  # fmt: skip
