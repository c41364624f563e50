"""A text column through the loop, with the real executable, registry and server.

init on ``examples/data/tickets.csv`` (English and Japanese support messages) → train →
serve → POST English and Japanese records (the server's one-row path gives what
``keizoku predict`` gives for the same rows; an empty text and a non-string get a 422
naming the field) → traffic whose messages are of another kind → ``monitor`` flags the
text column (exit 10), a data file like the training data is not flagged → ``retrain``
fires on that drift.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import yaml

from kzsupport import Server
from text_support import TICKETS, Project, records, tickets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    p = Project(tmp_path_factory.mktemp("text"))
    shutil.copy(TICKETS, p.root / "tickets.csv")
    init = p.run("init", "tickets.csv", "--target", "topic")
    assert init.code == 0, init.text
    schema = yaml.safe_load((p.root / "schema.yaml").read_text())
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert kinds["message"] == "text", kinds  # Japanese rows have no spaces: still text
    # the retrain searches as the first train did: two linear trials, not a 60 s clock
    spec = yaml.safe_load((p.root / "keizoku.yaml").read_text())
    retraining = spec.setdefault("retraining", {})
    retraining["train"] = {"models": ["linear"], "max_trials": 2, "budget": "10m"}
    (p.root / "keizoku.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    train = p.run("train", "--family", "linear", "--max-trials", "2", "--budget", "10m")
    assert train.code == 0, train.text
    assert "Registered tickets:1 as champion" in train.text
    return p


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    srv = Server(project.root, env=project.env).wait_ready()
    yield srv
    srv.stop()


def test_served_equals_predict_on_english_and_japanese(project: Project, server: Server) -> None:
    rows = tickets(40, seed=7)
    langs = rows["message"].map(lambda t: "ja" if "。" in t or "、" in t else "en")
    assert set(langs) == {"ja", "en"}
    resp = server.client.post("/v1/models/tickets/predict", json=records(rows))
    assert resp.status_code == 200, resp.text
    served = resp.json()["predictions"]
    rows.drop(columns="topic").to_csv(project.root / "rows.csv", index=False)
    res = project.run("predict", "--model", "tickets@champion", "rows.csv", "-o", "out.csv")
    assert res.code == 0, res.text
    batch = pd.read_csv(project.root / "out.csv")
    for i, one in enumerate(served):
        assert one["prediction"] == batch.loc[i, "prediction"]
        for label, prob in one["probabilities"].items():
            assert abs(prob - batch.loc[i, f"proba_{label}"]) < 1e-9, (i, label)
    # the model read the words: most of these unseen messages get their topic, in both languages
    right = pd.Series([p["prediction"] for p in served]) == rows["topic"]
    for lang in ("ja", "en"):
        assert right[langs == lang].mean() >= 0.8, (lang, right[langs == lang].mean())


@pytest.mark.parametrize(
    ("value", "msg"),
    [("", "empty text: send at least one word"), ("  ", "empty text"), (42, "expected a string")],
)
def test_empty_or_non_string_text_is_a_422_naming_the_field(
    server: Server, value: Any, msg: str
) -> None:
    record = {"message": value, "channel": "email", "amount": 10.0}
    resp = server.client.post("/v1/models/tickets/predict", json=[record])
    assert resp.status_code == 422, resp.text
    (problem,) = resp.json()["details"]
    assert problem["field"] == "message" and msg in problem["msg"], problem


def test_shifted_text_drifts_and_triggers_retrain(project: Project, server: Server) -> None:
    shifted = tickets(150, seed=11, shifted=True)
    resp = server.client.post("/v1/models/tickets/predict", json=records(shifted))
    assert resp.status_code == 200, resp.text
    labels = [
        {"request_id": p["request_id"], "label": y}
        for p, y in zip(resp.json()["predictions"], shifted["topic"], strict=True)
    ]  # retraining needs labelled traffic (retraining.window.min_labels: 100)
    fed = server.client.post("/v1/models/tickets/feedback", json=labels)
    assert fed.status_code == 200, fed.text
    server.stop()  # the log is flushed on shutdown

    same = project.root / "same.csv"
    tickets(150, seed=12).to_csv(same, index=False)
    quiet = project.run("monitor", "tickets", "--data", str(same), "--json")
    assert quiet.code in (0, 11), quiet.text  # no drift (11 would be a metric drop)
    report = json.loads(quiet.out)
    verdicts = {f["feature"]: f for f in report["features"]}
    assert not verdicts["message (tokens)"]["drifted"], verdicts["message (tokens)"]["reason"]

    flagged = project.run("monitor", "tickets", "--since", "1h", "--json")
    assert flagged.code == 10, flagged.text
    report = json.loads(flagged.out)
    assert "message (tokens)" in report["drifted"], report["drifted"]
    tokens = next(f for f in report["features"] if f["feature"] == "message (tokens)")
    assert tokens["kind"] == "text" and tokens["n"] >= 150
    assert "channel" not in report["drifted"] and "amount" not in report["drifted"]

    retrain = project.run("retrain", "tickets", "--json")
    assert retrain.code in (0, 6), retrain.text
    outcome = json.loads(retrain.out.strip().splitlines()[-1])
    assert outcome["status"] in ("passed", "failed")
    assert any("message (tokens)" in str(t) for t in outcome["triggers"]), outcome["triggers"]
