"""``torch_mlp`` through the loop as a user runs it: the real ``keizoku`` executable trains
it (``--family torch_mlp``), registers it, the real server scores with it and a second
train goes through the gates against it."""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kzsupport import KEIZOKU_EXE, REPO, CliResult, Server, json_records, need_module

need_module("torch", reason="torch_mlp needs torch: pip install 'keizoku[torch]'")

PENGUINS = REPO / "examples" / "data" / "penguins.csv"  # categories and missing values


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(root / ".keizoku")}

    def run(self, *args: str) -> CliResult:
        proc = subprocess.run(
            [KEIZOKU_EXE, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return CliResult(proc)


TRAIN = ("train", "--budget", "300s", "--family", "torch_mlp", "--max-trials", "2", "--folds", "3")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("mlp"))
    init = project.run("init", str(PENGUINS), "--target", "species")
    assert init.code == 0, init.text
    train = project.run(*TRAIN)
    assert train.code == 0, train.text
    project.train_output = train.text  # type: ignore[attr-defined]
    return project


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    srv = Server(project.root, env=project.env).wait_ready()
    yield srv
    srv.stop()


def test_the_network_is_on_the_leaderboard_and_registered(project: Project) -> None:
    out = project.train_output  # type: ignore[attr-defined]
    assert "trial 1 torch_mlp: ok" in out and "best epochs" in out  # the network's progress
    assert "Registered penguins:1 as champion" in out
    models = project.run("models")
    assert "penguins 1 champion log_loss" in models.text


def test_the_server_scores_like_batch_predict(project: Project, server: Server) -> None:
    result = project.run("predict", "-m", "penguins@champion", str(PENGUINS), "-o", "p.csv")
    assert result.code == 0, result.text
    batch = pd.read_csv(project.root / "p.csv")
    source = pd.read_csv(PENGUINS)
    assert (batch["prediction"] == source["species"]).mean() > 0.9
    rows = json_records(source.drop(columns=["species"]).iloc[:30])
    resp = server.client.post("/v1/models/penguins/predict", json=rows)
    assert resp.status_code == 200, resp.text
    for i, p in enumerate(resp.json()["predictions"]):
        assert p["prediction"] == batch["prediction"].iloc[i]
        for cls in ("Adelie", "Gentoo"):
            assert math.isclose(
                p["probabilities"][cls], batch[f"proba_{cls}"].iloc[i], rel_tol=1e-6, abs_tol=1e-9
            )


def test_a_second_network_goes_through_the_gates(project: Project, server: Server) -> None:
    again = project.run(*TRAIN)
    # Same rows, same seed: the same networks (deterministic on the CPU), so no gain.
    assert again.code == 6, again.text
    assert "penguins:2 failed its gates" in again.text
    assert "penguins 1 champion" in project.run("models").text
