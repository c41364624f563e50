"""Evaluation: metrics with known answers, a small BEIR set, SQuAD mode on XQuAD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keizoku.cli.rag import rag_app
from keizoku.rag.access import Identity
from keizoku.rag.collection import ingest, search
from keizoku.rag.evaluate import (
    beir_inputs,
    eval_squad,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    squad_em,
    squad_f1,
    squad_inputs,
)  # fmt: skip
from keizoku.rag.index import FusionConfig
from kzsupport import shared_datasets

XQUAD = shared_datasets() / "qa" / "xquad"


def test_metrics_known_answers() -> None:
    rels = {"a": 1.0, "b": 1.0}
    assert ndcg_at_k(["a", "b", "c"], rels) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a"], {"a": 1.0}) == pytest.approx(1 / 1.5849625, rel=1e-6)
    assert recall_at_k(["c", "a"], rels, 2) == 0.5
    assert mrr_at_k(["c", "d", "b"], rels) == pytest.approx(1 / 3)
    assert squad_em("The Broncos!", ["Denver Broncos", "broncos"]) == 1.0
    assert squad_f1("Denver won", ["Denver Broncos"]) == pytest.approx(0.5)


def test_beir_eval_from_the_cli(tmp_path: Path) -> None:
    animals = {
        "d1": ("Cats", "A cat is a small feline that purrs and hunts mice."),
        "d2": ("Dogs", "Dogs are loyal canines that bark and fetch sticks."),
        "d3": ("Birds", "Birds have feathers and most of them can fly."),
        "d4": ("Fish", "Fish live in water and breathe through gills."),
    }
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": k, "title": t, "text": x})
                                for k, (t, x) in animals.items()))  # fmt: skip
    queries = tmp_path / "queries.jsonl"
    qs = {"q1": "which animal purrs?", "q2": "what barks?", "q3": "who breathes with gills?"}
    queries.write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in qs.items()))
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t1\n")
    runner = CliRunner()
    res = runner.invoke(rag_app, ["ingest-beir", str(corpus), "-C", "zoo"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(rag_app, ["eval", "-C", "zoo", "--queries", str(queries),
                                  "--qrels", str(qrels), "-k", "10"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out == {"queries": 3, "ndcg@10": 1.0, "mrr@10": 1.0, "recall@10": 1.0}


def test_a_beir_document_without_title_is_indexed_by_its_text_only(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": "zebra7", "title": "", "text": "Stripes confuse biting flies."},
            {"_id": "okapi1", "text": "A zebra is a striped horse."}]  # fmt: skip
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    ingest("plain", beir_inputs(corpus, ["group:everyone"]))
    who, lexical = Identity("u", ()), FusionConfig(mode="lexical")
    # the key 'zebra7' is not the document's words: only okapi1 says zebra
    assert [h.source for h in search("plain", "zebra", who, fusion=lexical)] == ["beir:okapi1"]
    assert search("plain", "okapi", who, fusion=lexical) == []


@pytest.mark.shared
@pytest.mark.skipif(not (XQUAD / "xquad.en.json").is_file(),
                    reason="needs ../shared/datasets/qa/xquad/xquad.en.json")  # fmt: skip
def test_squad_mode_on_xquad(tmp_path: Path) -> None:
    data = json.loads((XQUAD / "xquad.en.json").read_text())
    data["data"] = data["data"][:4]  # 4 articles (20 paragraphs) keep the test fast
    small = tmp_path / "xquad4.json"
    small.write_text(json.dumps(data))
    ingest("xq", squad_inputs(small, ["group:everyone"]))
    out = eval_squad("xq", small, Identity("eval", ()), k=5, limit=20)
    assert out["questions"] == 20
    assert out["context_hit@5"] >= 0.8
    # the extractive answer is a whole sentence: low exact match, some token overlap
    assert 0.03 <= out["f1"] <= 1.0 and out["exact_match"] <= out["f1"]
