"""Japanese documents: text processing, lexical-only collections, embeddings over HTTP,
the access filter on Japanese text (lexical and dense paths), and Japanese answer metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keizoku import auth
from keizoku.errors import UserInputError
from keizoku.rag.access import Identity
from keizoku.rag.chunk import ChunkConfig, chunk_document
from keizoku.rag.collection import (
    collection_info,
    file_inputs,
    ingest,
    search,
    set_acl,
)
from keizoku.rag.embed import EmbeddingConfig, EmbeddingError
from keizoku.rag.evaluate import eval_squad, squad_em, squad_f1, squad_inputs
from keizoku.rag.index import FusionConfig
from keizoku.rag.parse import ParsedDoc, Section
from keizoku.rag.text import detect_language, split_sentences, tokenize, tokenize_query

TSUYU = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本で見られる気象現象で、"
    "5月から7月にかけて来る曇りや雨の多い期間のこと。雨季の一種である。"
)


def test_language_sentences_and_tokens() -> None:
    assert detect_language(TSUYU) == "ja"
    assert detect_language("The deploy runs on Tuesdays (東京).") == "en"
    assert split_sentences(TSUYU + "Deploys are weekly. They run at noon.") == [
        TSUYU[: TSUYU.index("。") + 1],
        "雨季の一種である。",
        "Deploys are weekly.",
        "They run at noon.",
    ]
    toks = tokenize("ｶﾀｶﾅの附属病院 deploys")
    # NFKC folds half-width kana; the analyser normalises spellings; English is stemmed
    assert {"片仮名", "付属", "病院", "deploi", "#附属"} <= set(toks)
    assert tokenize("Deploys happen") == ["deploi", "happen"]  # English as before


def test_compounds_and_their_parts_and_no_question_words_in_queries() -> None:
    toks = tokenize("国際連合の本部はどこにあるか")
    # split mode C keeps the compound, mode A its parts; the index keeps every word
    assert {"国際連合", "国際", "連合", "本部", "どこ"} <= set(toks)
    query = tokenize_query("国際連合の本部はどこにあるか。誰が何を決めるのか")
    assert {"国際連合", "本部", "決める"} <= set(query)
    assert not {"どこ", "誰", "何"} & set(query)  # interrogatives ask; the passage answers
    assert tokenize_query("Where is the UN based?") == tokenize("Where is the UN based?")


def test_japanese_chunks_are_sized_in_characters() -> None:
    doc = ParsedDoc("t", "text", [Section((), TSUYU * 8 + "\n\nThe English tail. It is short.")])
    chunks = chunk_document(doc, ChunkConfig(max_chars=200, overlap_chars=40))
    assert len(chunks) >= 3
    assert all(len(c.text) <= 200 + len("The English tail. It is short.") + 1 for c in chunks)
    assert " " not in chunks[0].text  # Japanese sentences are joined without spaces
    assert chunks[-1].text.endswith("It is short.")


@pytest.fixture
def ja_docs(tmp_path: Path, write) -> Path:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    write(
        docs / "hr.md",
        "---\nallow: [group:hr]\n---\n# 人事規程\n\n## 給与\n\n"
        "給与は毎月二十五日に銀行振込で支払われる。役員報酬の暗号はカワウソ九九である。\n",
    )
    write(
        docs / "eng.md",
        "---\nallow: [group:eng, user:carol]\n---\n# 開発手順\n\n## デプロイ\n\n"
        "本番環境へのデプロイは毎週火曜日に行う。障害時は当番が切り戻しを判断する。\n",
    )
    write(
        docs / "all.md",
        "---\nallow: [group:everyone]\n---\n# 社内案内\n\n## 休暇\n\n"
        "年次有給休暇は入社半年後に十日付与される。\n",
    )
    auth.set_user_groups("alice", ["hr"])
    auth.set_user_groups("bob", ["eng"])
    auth.set_user_groups("dave", ["sales", "eng"])
    return docs


def who(user: str | None) -> Identity:
    return Identity(user, auth.get_user_groups(user)) if user else Identity.anonymous()


def sources(hits: list) -> set[str]:  # type: ignore[type-arg]
    return {Path(h.source).name for h in hits}


def test_japanese_collection_without_server_is_lexical_only(ja_docs: Path) -> None:
    report = ingest("ja", *file_inputs([ja_docs]))
    assert report.embedding.startswith("none") and "lexical-only" in report.notes[0]
    info = collection_info("ja")
    assert info["search"] == "lexical-only (BM25)" and info["languages"] == {"ja": 3}
    assert sources(search("ja", "給与はいつ支払われますか", who("alice")))
    with pytest.raises(UserInputError, match="lexical-only"):
        search("ja", "給与", who("alice"), fusion=FusionConfig(mode="dense"))


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid"])
def test_access_filter_on_japanese_documents(ja_docs: Path, stand_in, mode: str) -> None:  # type: ignore[no-untyped-def]
    emb = EmbeddingConfig(backend="http", model="stand-in", url=stand_in.base)
    ingest("ja", *file_inputs([ja_docs]), embedding=emb)
    fusion = FusionConfig(mode=mode)
    q = "給与の支払日と役員報酬の暗号、デプロイの曜日、休暇の日数"
    assert sources(search("ja", q, who("alice"), k=10, fusion=fusion)) == {"hr.md", "all.md"}
    assert sources(search("ja", q, who("bob"), k=10, fusion=fusion)) == {"eng.md", "all.md"}
    assert sources(search("ja", q, who("carol"), k=10, fusion=fusion)) == {"eng.md", "all.md"}
    assert sources(search("ja", q, who("dave"), k=10, fusion=fusion)) == {"eng.md", "all.md"}
    assert search("ja", q, who(None), k=10, fusion=fusion) == []
    # an access change applies on the next query
    set_acl("ja", str(ja_docs / "hr.md"), ["group:eng"])
    assert sources(search("ja", q, who("bob"), k=10, fusion=fusion)) == {
        "hr.md",
        "eng.md",
        "all.md",
    }
    assert sources(search("ja", q, who("alice"), k=10, fusion=fusion)) == {"all.md"}


def test_embeddings_come_from_the_configured_server(ja_docs: Path, stand_in) -> None:  # type: ignore[no-untyped-def]
    emb = EmbeddingConfig(backend="http", model="stand-in", url=stand_in.base)
    report = ingest("ja", *file_inputs([ja_docs]), embedding=emb)
    assert report.embedding.startswith("http stand-in") and report.chunks_embedded == 3
    assert any("デプロイ" in t for t in stand_in.embed_inputs)
    hits = search("ja", "デプロイは何曜日", who("bob"), fusion=FusionConfig(mode="dense"))
    assert hits and hits[0].source.endswith("eng.md")
    assert "デプロイは何曜日" in stand_in.embed_inputs  # the query went to the server too
    # the config is the collection's: changing it needs --rebuild
    with pytest.raises(UserInputError, match="--rebuild"):
        ingest("ja", *file_inputs([ja_docs]))
        ingest("ja", *file_inputs([ja_docs]), embedding=EmbeddingConfig(model="other"))


def test_an_unreachable_embedding_server_is_a_clear_error(ja_docs: Path) -> None:
    emb = EmbeddingConfig(backend="http", model="m", url="http://127.0.0.1:9/v1")
    with pytest.raises(EmbeddingError, match="could not be reached"):
        ingest("ja", *file_inputs([ja_docs]), embedding=emb)
    with pytest.raises(UserInputError, match="embeddings.url"):
        EmbeddingConfig(backend="http", url="localhost:8080").check()


def test_japanese_answer_metrics(tmp_path: Path) -> None:
    assert squad_em("小笠原諸島。", ["小笠原諸島"]) == 1.0
    assert squad_f1("小笠原諸島を除く", ["小笠原諸島"]) == pytest.approx(2 * 5 / 8 / (1 + 5 / 8))
    assert squad_f1("the cat sat", ["cat"]) == pytest.approx(0.5 / 0.75 * 1.0)
    data = {
        "data": [
            {
                "title": "梅雨",
                "paragraphs": [
                    {
                        "context": "梅雨 [SEP] " + TSUYU,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "日本で梅雨がないのは北海道とどこか。",
                                "answers": [{"text": "小笠原諸島", "answer_start": 25}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "ja.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    inputs = squad_inputs(path, ["group:everyone"])
    assert "[SEP]" not in inputs[0].parse().sections[0].text
    ingest("sq", inputs)
    out = eval_squad("sq", path, Identity("eval", ()), k=5)
    assert out["context_hit@5"] == 1.0 and out["citation_precision"] == 1.0
    assert 0.0 < out["f1"] < 1.0 and out["exact_match"] == 0.0  # a sentence, not the span
