"""A clustering through the whole loop, with the real ``keizoku`` executable and server.

init (no target: clustering) → train (champion) → predict a file → serve (cluster, membership,
distance) → monitor (cluster shares and distance drift from the log) → train again (gated:
silhouette, baseline, stability, latency) → report → retrain on the logged inputs.
The wine set's cultivars (its target, removed) are the known groups.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.metrics import adjusted_rand_score

from kzsupport import KEIZOKU_EXE, CliResult, Server, json_records

pytestmark = pytest.mark.slow


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(root / ".keizoku")}
        wine = load_wine(as_frame=True)
        self.truth = wine.target.to_numpy()
        self.frame = wine.frame.drop(columns="target")
        self.frame.to_csv(root / "wine.csv", index=False)

    def __call__(self, *args: str) -> CliResult:
        proc = subprocess.run(
            [KEIZOKU_EXE, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        return CliResult(proc)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("wine-clusters"))


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    srv = Server(project.root, env=project.env).wait_ready()
    yield srv
    srv.stop()


def test_init_without_a_target_infers_clustering_and_says_so(project: Project):
    result = project("init", "wine.csv")
    assert result.code == 0, result.text
    assert "the task is clustering" in result.text
    spec = (project.root / "keizoku.yaml").read_text()
    assert "task: clustering" in spec and "target:" not in spec


def test_init_refuses_a_target_with_task_clustering(project: Project):
    result = project("init", "wine.csv", "--target", "alcohol", "--task", "clustering",
                     "-c", "other.yaml")  # fmt: skip
    assert result.code == 2
    assert "--task clustering takes no target" in result.text


def test_first_train_becomes_champion_and_finds_the_cultivars(project: Project):
    result = project("train", "--max-trials", "6", "--json")
    assert result.code == 0, result.text
    out = json.loads(result.out.strip().splitlines()[-1])
    assert out["state"] == "champion" and out["task"] == "clustering"
    assert out["k"] == 3 and len(out["leaderboard"]) == 6
    assert sum(c["size"] for c in out["profile"]) == len(project.frame)


def test_predict_gives_cluster_distance_and_membership(project: Project):
    result = project("predict", "--model", "wine@champion", "wine.csv", "-o", "scored.csv")
    assert result.code == 0, result.text
    scored = pd.read_csv(project.root / "scored.csv")
    assert {"prediction", "distance", "proba_0", "proba_1", "proba_2"} <= set(scored.columns)
    assert adjusted_rand_score(project.truth, scored["prediction"]) > 0.8
    probs = scored[["proba_0", "proba_1", "proba_2"]]
    assert (probs.sum(axis=1) - 1).abs().max() < 1e-9
    assert (probs.to_numpy().argmax(axis=1) == scored["prediction"]).all()
    assert (scored["distance"] > 0).all()


def test_the_server_answers_cluster_membership_and_distance(project: Project, server: Server):
    rows = json_records(project.frame.head(5))
    response = server.client.post("/v1/models/wine/predict", json=rows[0])
    assert response.status_code == 200, response.text
    body = response.json()
    scored = pd.read_csv(project.root / "scored.csv")
    assert body["prediction"] == int(scored["prediction"].iloc[0])
    assert body["distance"] == pytest.approx(scored["distance"].iloc[0])
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    bad = server.client.post("/v1/models/wine/predict", json={**rows[0], "alcohol": "strong"})
    assert bad.status_code == 422 and "alcohol" in bad.json()["message"]
    why = server.client.post("/v1/models/wine/explain", json={"row": rows[0], "top": 3})
    assert why.status_code == 200, why.text
    explained = why.json()
    assert explained["prediction"] == body["prediction"]
    assert explained["output_class"] == str(body["prediction"])  # membership of its cluster
    assert len(explained["contributions"]) == 3


def test_monitor_tracks_cluster_shares_and_distance_to_centre(project: Project, server: Server):
    shifted = project.frame.copy()
    shifted["proline"] = shifted["proline"] * 1.8  # far from every centre
    sent = server.client.post("/v1/models/wine/predict", json=json_records(shifted))
    assert sent.status_code == 200
    server.stop()  # flushes the prediction log
    result = project("monitor", "wine", "--json")
    assert result.code == 10, result.err[-500:]  # drift
    report = json.loads(result.out)
    by_name = {f["feature"]: f for f in report["features"]}
    assert by_name["distance to centre"]["drifted"] is True
    assert report["prediction"]["kind"] == "categorical"  # the cluster shares
    assert by_name["alcohol"]["drifted"] is False


def test_a_second_train_is_gated_against_the_champion(project: Project):
    result = project("train", "--max-trials", "4")
    assert result.code in (0, 6), result.text
    for gate in ("silhouette", "baseline", "stability", "latency"):
        assert f"{gate}:" in result.text
    history = project("history", "wine", "--json")
    actions = [e["action"] for e in _lines(history.out)]
    assert actions.count("register") == 2 and "gate" in actions


def test_report_profiles_each_cluster(project: Project):
    result = project("report", "wine@champion", "-o", "report.html")
    assert result.code == 0, result.text
    html = (project.root / "report.html").read_text()
    assert "Clusters: size and what sets each apart" in html
    assert html.count('<td class="num">') > 3 and "kmeans" in html or "gmm" in html


def test_retrain_uses_the_logged_inputs_and_audits_it(project: Project):
    result = project("retrain", "wine", "--force")
    assert result.code in (0, 6), result.text
    assert "traffic" in result.text
    history = project("history", "wine", "--json")
    retrains = [e for e in _lines(history.out) if e["action"] == "retrain"]
    assert retrains and retrains[-1]["evidence"]["rows"]["traffic"] > 0  # type: ignore[index]


def test_a_constant_feature_at_train_is_a_clear_error(project: Project):
    broken = project.frame.copy()
    broken["ash"] = 2.0
    broken.to_csv(project.root / "wine.csv", index=False)
    result = project("train", "--max-trials", "2")
    assert result.code == 2
    assert "Column 'ash' is constant" in result.text
