"""Text columns: does the tokenizer matter on Japanese, and what do embeddings cost?

    python bench/text.py --out bench/work/text.json [--parts classify,jsquad,embed,trees]

**classify** (issue 17's Japanese text-classification check): the generated support
tickets (``tests/text_support.py``, CC0; 600 rows, 3 topics, half Japanese), each
language alone; TF-IDF (min_df 2, sublinear tf) + logistic regression, 5-fold CV
accuracy, with scikit-learn's default word tokens (what a whitespace/word tokenizer makes
of text without spaces) against keizoku's ``TextTokenizer`` (SudachiPy words; bigrams).

**jsquad** (shared data, skipped when absent): question → paragraph matching on JSQuAD
v1.3 validation (4,442 questions, 1,145 paragraphs): TF-IDF cosine, top-1 accuracy and
MRR@10, the same three tokenizers (ties rank the gold paragraph last).

**embed**: the encoder on the English tickets (MiniLM is English): fit seconds without and
with ``embeddings: true``, one record's encoding (median of 50 unseen texts, then of the
same 50 again from the cache), and the linear model's CV accuracy each way.

**trees** (not in the default parts): what the cap on TF-IDF terms per text column for
tree models (``TabularEncoder.text_features``, 50) costs them: LightGBM's 5-fold CV
accuracy at 50, 200 and 1,000 terms on the tickets and on JSQuAD questions → article.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _tokenizers() -> dict[str, Any]:
    from keizoku.features.text import TextTokenizer, japanese_analyzer

    out: dict[str, Any] = {"whitespace": None, "keizoku bigrams": TextTokenizer("bigrams")}
    if japanese_analyzer() is not None:
        out["keizoku sudachi"] = TextTokenizer("sudachi")
    return out


def _vectorizer(tok: Any, **kw: Any) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**kw) if tok is None else TfidfVectorizer(analyzer=tok, **kw)


def classify() -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    from keizoku.features.text import has_japanese
    from text_support import tickets

    data = tickets(600, 1)
    out: dict[str, Any] = {}
    for lang in ("ja", "en"):
        part = data[data["message"].map(has_japanese) == (lang == "ja")]
        for name, tok in _tokenizers().items():
            vec = _vectorizer(tok, min_df=2, sublinear_tf=True)
            model = make_pipeline(vec, LogisticRegression(max_iter=1000))
            t0 = time.perf_counter()
            acc = cross_val_score(model, part["message"], part["topic"], cv=5)
            out[f"{lang} {name}"] = {
                "rows": len(part),
                "accuracy": round(float(acc.mean()), 4),
                "vocabulary": len(vec.fit(part["message"]).vocabulary_),
                "seconds": round(time.perf_counter() - t0, 2),
            }
            print(lang, name, out[f"{lang} {name}"], flush=True)
    return out


def jsquad() -> dict[str, Any]:
    from kzsupport import shared_datasets

    path = shared_datasets() / "qa" / "jsquad" / "valid-v1.3.json"
    if not path.exists():
        return {"skipped": f"{path} is absent (shared data of the keizoku workplace)"}
    paragraphs: list[str] = []
    questions: list[str] = []
    answers: list[int] = []
    for article in json.loads(path.read_text())["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                answers.append(len(paragraphs))
            paragraphs.append(para["context"])
    gold = np.asarray(answers)
    out: dict[str, Any] = {"questions": len(questions), "paragraphs": len(paragraphs)}
    for name, tok in _tokenizers().items():
        t0 = time.perf_counter()
        vec = _vectorizer(tok)
        docs = vec.fit_transform(paragraphs)
        sims = (vec.transform(questions) @ docs.T).toarray()
        # ties count against the gold paragraph: a question sharing no token with any
        # paragraph (all similarities 0) ranks last, not first
        rank = (sims >= sims[np.arange(len(gold)), gold][:, None]).sum(axis=1)
        out[name] = {
            "top1": round(float(np.mean(rank == 1)), 4),
            "mrr@10": round(float(np.mean(np.where(rank <= 10, 1.0 / rank, 0.0))), 4),
            "vocabulary": len(vec.vocabulary_),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print("jsquad", name, out[name], flush=True)
    return out


def _tree_cv(texts: pd.Series, labels: pd.Series, width: int) -> dict[str, Any]:
    """5-fold CV accuracy of LightGBM on one text column encoded as keizoku's tree models
    see it (``TabularEncoder`` in ordinal mode, ``text_features=width`` TF-IDF terms)."""
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedKFold

    from keizoku.data.schema import Column
    from keizoku.features.encoder import TabularEncoder

    frame, y = pd.DataFrame({"text": texts.to_numpy()}), labels.to_numpy()
    scores, t0 = [], time.perf_counter()
    for fit_i, test_i in StratifiedKFold(5, shuffle=True, random_state=0).split(frame, y):
        enc = TabularEncoder([Column(name="text", kind="text")], "ordinal", text_features=width)
        enc.fit(frame.iloc[fit_i])
        model = LGBMClassifier(n_estimators=200, n_jobs=1, verbose=-1, random_state=0)
        model.fit(enc.transform(frame.iloc[fit_i]), y[fit_i])
        scores.append(float(np.mean(model.predict(enc.transform(frame.iloc[test_i])) == y[test_i])))
    return {"accuracy": round(float(np.mean(scores)), 4), "terms": enc.n_features_out_,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def trees() -> dict[str, Any]:
    """Tree models read at most ``text_features`` TF-IDF terms per text column (50 unless
    set): does a wider cap help them? The tickets of **classify**, and JSQuAD questions
    labelled with their article (the 10 articles with the most questions: 2,523 questions,
    Japanese; skipped without the shared data)."""
    from kzsupport import shared_datasets
    from text_support import tickets

    sets = {"tickets": tickets(600, 1).rename(columns={"message": "text", "topic": "label"})}
    path = shared_datasets() / "qa" / "jsquad" / "valid-v1.3.json"
    if path.exists():
        rows = [(qa["question"], article["title"])
                for article in json.loads(path.read_text())["data"]
                for para in article["paragraphs"] for qa in para["qas"]]  # fmt: skip
        qs = pd.DataFrame(rows, columns=["text", "label"])
        top = qs["label"].value_counts().index[:10]
        sets["jsquad articles"] = qs[qs["label"].isin(top)].reset_index(drop=True)
    out: dict[str, Any] = {}
    for name, data in sets.items():
        for width in (50, 200, 1000):
            out[f"{name} {width}"] = {
                "rows": len(data),
                **_tree_cv(data["text"], data["label"], width),
            }
            print("trees", name, width, out[f"{name} {width}"], flush=True)
    return out


def embed() -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from keizoku.data.schema import Column
    from keizoku.features.embed import get_embedder
    from keizoku.features.encoder import TabularEncoder
    from keizoku.features.text import has_japanese
    from text_support import tickets

    data = tickets(720, 2)
    en = data[~data["message"].map(has_japanese)].reset_index(drop=True)
    unseen = tickets(200, 9)
    unseen = unseen[~unseen["message"].map(has_japanese)].head(50).to_dict("records")
    t0 = time.perf_counter()
    get_embedder()
    out: dict[str, Any] = {"rows": len(en), "model load s": round(time.perf_counter() - t0, 2)}
    for flag in (False, True):
        cols = [Column(name="message", kind="text", embeddings=flag)]
        t0 = time.perf_counter()
        enc = TabularEncoder(cols, mode="onehot").fit(en)
        X = enc.transform(en)
        fit_s = time.perf_counter() - t0
        acc = cross_val_score(LogisticRegression(max_iter=2000), X, en["topic"], cv=5).mean()
        one = []
        for rec in unseen:
            t1 = time.perf_counter()
            enc.transform_records([rec])
            one.append((time.perf_counter() - t1) * 1000)
        cached = []
        for rec in unseen:
            t1 = time.perf_counter()
            enc.transform_records([rec])
            cached.append((time.perf_counter() - t1) * 1000)
        key = "tfidf + embeddings" if flag else "tfidf"
        out[key] = {
            "features": enc.n_features_out_,
            "fit + transform s": round(fit_s, 2),
            "one record ms (median)": round(statistics.median(one), 3),
            "one record ms cached (median)": round(statistics.median(cached), 3),
            "linear cv accuracy": round(float(acc), 4),
        }
        print("embed", key, out[key], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "work" / "text.json")
    ap.add_argument("--parts", default="classify,jsquad,embed")
    args = ap.parse_args()
    parts = {"classify": classify, "jsquad": jsquad, "embed": embed, "trees": trees}
    result: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for part in args.parts.split(","):
        result[part] = parts[part]()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
