"""Training and scoring on a real local Ray cluster (tests/distributed/conftest.py):
``train --ray`` / ``predict --ray`` through the real executable on the head node (the
scored blocks streamed into the file a local ``predict`` writes), then, with a worker node
joined, the same leaderboard as the local search for the same seed and ``max_trials`` and
a worker node killed mid-search losing no trial. Tiny data, two families, three folds, a
handful of trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer

from keizoku.data.schema import infer_schema
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.search import SearchResult, run_search
from kzsupport import KEIZOKU_EXE
from ray_support import DRIVER_ENV, Cluster

# Everything but the clock: fit time and latency are measured, not computed.
SAME = ["trial", "model", "score", "std", "status", "chosen", "params"]
SETTINGS: dict[str, Any] = {
    "budget": "600s",
    "max_trials": 4,
    "models": ["lightgbm", "linear"],
    "folds": 3,
    "seed": 3,
}


def _frame() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.sample(150, random_state=0)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    frame = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainingData.build(frame, infer_schema(frame, "target"))


@pytest.fixture(scope="module")
def local(data: TrainingData) -> SearchResult:
    return run_search(data, TrainSpec.model_validate(SETTINGS))


def _on(cluster: Cluster) -> TrainSpec:
    return TrainSpec.model_validate({**SETTINGS, "ray": cluster.address})


def _keizoku(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **DRIVER_ENV, "KEIZOKU_HOME": str(cwd / ".keizoku"), "COLUMNS": "200"}
    return subprocess.run(
        [KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def project(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project trained on the cluster through the CLI (the spec's ``train: ray:``)."""
    where = tmp_path_factory.mktemp("ray-project")
    frame = _frame()
    frame.to_csv(where / "train.csv", index=False)
    assert _keizoku("init", "train.csv", "--target", "target", cwd=where).returncode == 0
    spec = where / "keizoku.yaml"
    # The spec key (train: ray:), as a team sets it once; --ray overrides it.
    text = spec.read_text()
    assert "\ntrain:\n" in text
    spec.write_text(text.replace("\ntrain:\n", f"\ntrain:\n  ray: '{ray_cluster.address}'\n"))
    flags = ["--budget", "600s", "--max-trials", "3", "--family", "lightgbm", "--folds", "3"]
    trained = _keizoku("train", *flags, "--json", cwd=where)
    assert trained.returncode == 0, trained.stderr
    out = json.loads(trained.stdout)
    assert (out["version"], out["state"]) == (1, "champion")
    assert sum(r["status"] == "ok" for r in out["leaderboard"]) == 3
    return where


MODEL = ["--model", "train@champion"]


def test_train_and_predict_through_the_cli(ray_cluster: Cluster, project: Path) -> None:
    _frame().drop(columns=["target"]).to_parquet(project / "score.parquet", index=False)
    here = _keizoku("predict", "score.parquet", *MODEL, "-o", "here.parquet", cwd=project)
    assert here.returncode == 0, here.stderr
    there = _keizoku(
        "predict", "score.parquet", *MODEL, "-o", "ray.parquet", "--ray", ray_cluster.address,
        cwd=project,
    )  # fmt: skip
    assert there.returncode == 0, there.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(project / "ray.parquet"), pd.read_parquet(project / "here.parquet")
    )


def _many_blocks(rows: int) -> pa.Table:
    """``rows`` rows to score in many blocks, written by pyarrow (no pandas metadata), with
    an integer column whose only nulls are in the last blocks and a text column that is all
    null in the first ones: what per-block typing would get wrong."""
    frame = pd.concat([_frame().drop(columns=["target"])] * (rows // 150 + 1)).head(rows)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    late_nulls = pa.array([None if i >= rows - 30 and i % 2 else i for i in range(rows)],
                          pa.int64())  # fmt: skip
    sparse_text = pa.array([None if i < 100 else f"r{i}" for i in range(rows)], pa.string())
    return table.append_column("row_id", late_nulls).append_column("note", sparse_text)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_predict_streams_many_blocks_into_the_local_output(
    ray_cluster: Cluster, project: Path, suffix: str
) -> None:
    """Scored blocks are written one by one (--batch-size 40: ten blocks and more), and
    the file equals the local predict's: same rows, order, columns and types (Parquet) or
    the same bytes (CSV)."""
    pq.write_table(_many_blocks(450), project / "many.parquet", row_group_size=100)
    batch = ["--batch-size", "40"]
    local, remote = f"local{suffix}", f"remote{suffix}"
    here = _keizoku("predict", "many.parquet", *MODEL, *batch, "-o", local, cwd=project)
    assert here.returncode == 0, here.stderr
    there = _keizoku("predict", "many.parquet", *MODEL, *batch, "-o", remote,
                     "--ray", ray_cluster.address, cwd=project)  # fmt: skip
    assert there.returncode == 0, there.stderr
    if suffix == ".csv":
        assert (project / remote).read_bytes() == (project / local).read_bytes()
    else:
        ours, theirs = pq.read_table(project / remote), pq.read_table(project / local)
        assert ours.schema.equals(theirs.schema, check_metadata=False)
        assert ours.schema.field("row_id").type == pa.float64()  # as pandas reads the file
        pd.testing.assert_frame_equal(ours.to_pandas(), theirs.to_pandas())
    assert not list(project.glob(f".{remote}.tmp-*")), "the temporary file was renamed"


def test_a_bad_row_in_a_late_block_writes_nothing(ray_cluster: Cluster, project: Path) -> None:
    table = _many_blocks(300)
    bad = table.column("mean_radius").to_pylist()
    bad[290] = 1e300  # beyond the validator's bound, in the last block
    table = table.set_column(table.schema.get_field_index("mean_radius"), "mean_radius",
                             pa.array(bad, pa.float64()))  # fmt: skip
    pq.write_table(table, project / "bad.parquet", row_group_size=100)
    res = _keizoku("predict", "bad.parquet", *MODEL, "--batch-size", "40", "-o", "bad_out.csv",
                   "--ray", ray_cluster.address, cwd=project)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "mean_radius" in res.stderr and "too large" in res.stderr
    assert not (project / "bad_out.csv").exists()
    assert not list(project.glob(".bad_out.csv.tmp-*")), "the partial file was removed"


def test_the_clusters_messages_go_to_stderr_not_a_commands_stdout(
    ray_cluster: Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    """A node's death, reported while `train --json` runs, must not corrupt its JSON."""
    from ray._private import worker

    from keizoku.distributed.cluster import connect

    connect(ray_cluster.address)
    capfd.readouterr()
    event = "The node with node id: 00ff and address: 127.0.0.1 has been marked dead"
    worker.print_to_stdstream({"lines": [event], "pid": "raylet", "is_err": False}, False)
    out, err = capfd.readouterr()
    assert out == "" and event in err


def test_the_cluster_gives_the_local_leaderboard(
    two_node_cluster: Cluster, data: TrainingData, local: SearchResult
) -> None:
    remote = run_search(data, _on(two_node_cluster))
    pd.testing.assert_frame_equal(remote.leaderboard[SAME], local.leaderboard[SAME])
    assert remote.cv_score == local.cv_score
    assert [m.family for m in remote.model.members] == [m.family for m in local.model.members]
    rows = data.frame.drop(columns=["target"]).head(20)
    pd.testing.assert_frame_equal(remote.model.score_frame(rows), local.model.score_frame(rows))
    # both nodes fitted folds (SPREAD): the work left this process's node
    import ray

    assert sum(n["Alive"] for n in ray.nodes()) == 2


def test_a_worker_killed_mid_search_loses_no_trial(
    two_node_cluster: Cluster, data: TrainingData, local: SearchResult
) -> None:
    import ray

    # The worker node, killed below: the file's last test on the cluster, so the tests
    # before it have both nodes (starting a third to kill costs seconds of CPU).
    raylet = two_node_cluster.nodes[1].raylet_pid()
    killed: list[int] = []

    def kill_after_first(trial: Any, _elapsed: float) -> None:
        # The next trial's folds are spread over both nodes, one of them now dead.
        if not killed:
            os.kill(raylet, signal.SIGKILL)
            killed.append(trial.number)

    remote = run_search(data, _on(two_node_cluster), on_trial=kill_after_first)
    assert killed == [0]
    # The head notices a dead node after its health checks fail (seconds): wait for it.
    deadline = time.monotonic() + 120
    while not (dead := [n for n in ray.nodes() if not n["Alive"]]):
        assert time.monotonic() < deadline, "the killed node should be reported dead"
        time.sleep(0.5)
    assert len(dead) == 1, "only the killed node should be reported dead by the cluster"
    assert sum(t.status == "ok" for t in remote.trials) == SETTINGS["max_trials"]
    pd.testing.assert_frame_equal(remote.leaderboard[SAME], local.leaderboard[SAME])


def test_an_unreachable_address_is_one_line_and_registers_nothing(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed: pip install 'keizoku[ray]'")
    _frame().to_csv(tmp_path / "train.csv", index=False)
    assert _keizoku("init", "train.csv", "--target", "target", cwd=tmp_path).returncode == 0
    closed = "127.0.0.1:9"  # the discard port: nothing listens there
    res = _keizoku("train", "--max-trials", "1", "--ray", closed, cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and closed in lines[0] and "ray start --head" in lines[0]
    bad = _keizoku("train", "--ray", "not-an-address", cwd=tmp_path)
    assert bad.returncode == 2 and "'not-an-address'" in bad.stderr
    models = _keizoku("models", "--json", cwd=tmp_path)
    assert models.returncode == 0 and json.loads(models.stdout) == []


@pytest.mark.parametrize("flag", [["--drop", "row_id"], ["--na-values", "?"], ["--no-header"]])
def test_read_flags_with_ray_are_refused_not_ignored(tmp_path: Path, flag: list[str]) -> None:
    """Ray Data reads Parquet blocks as they are: a read flag is an error naming it, before
    anything connects or writes (no cluster is needed to be told)."""
    res = _keizoku("predict", "x.parquet", "-m", "m", "-o", "out.parquet",
                   "--ray", "127.0.0.1:1", *flag, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert flag[0] in res.stderr and "--ray" in res.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_the_read_is_planned_from_the_footers_one_task_per_mebibyte() -> None:
    """predict --ray plans its read tasks from the row groups the driver read in the
    footers: one per Ray Data minimum block of input (a small input is one task), never
    more than the row groups or the cap, each a contiguous run in file order."""
    from keizoku.distributed.ray_predict import RowGroup, read_runs, read_tasks

    mib = 1 << 20
    groups = [RowGroup("a.parquet", i, 100, 300_000) for i in range(5)]
    groups.append(RowGroup("b.parquet", 0, 50, 100_000))
    assert read_tasks(groups[:1], mib, 200) == 1
    assert read_tasks(groups, mib, 200) == 2  # 1.6 MB
    assert read_tasks(groups, 1, 200) == 6  # at most one per row group
    assert read_tasks(groups, 1, 4) == 4  # at most the cap
    assert read_tasks([], mib, 200) == 1
    runs = read_runs(groups, 2)
    assert runs == [groups[:3], groups[3:]]
    assert [len(r) for r in read_runs(groups, 4)] == [2, 2, 1, 1]
    assert [g for run in read_runs(groups, 4) for g in run] == groups
    assert read_runs(groups, 100) == [[g] for g in groups]
