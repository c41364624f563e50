"""Deployments pin gated versions; experiments are objects; registry and servers agree.

One trained penguins home (v1 champion, v2 challenger) per module; every command runs
the ``keizoku`` console script in its own process (``kzsupport.KEIZOKU_EXE``); servers are
real, on loopback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kzsupport import log_prediction, until
from rollout_support import MODEL, Server, cli, frame, set_gate, trained_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("experiments")) as root:
        yield root


def _audit(action: str) -> list[dict[str, Any]]:
    from keizoku import audit

    return audit.read(MODEL, actions=(action,))


def _log(rows: list[tuple[str, int, str, float, str]], shadow: bool = False) -> None:
    """Predictions as the server logs them: (request_id, version, variant, ts, predicted)."""
    from keizoku.monitoring.log import PredictionLog

    inputs = frame().drop(columns="species").iloc[0].to_dict()
    with PredictionLog(flush_interval_s=60) as log:
        for rid, version, variant, ts, pred in rows:
            log_prediction(
                log, request_id=rid, ts=ts, model=MODEL, version=version, variant=variant,
                inputs=inputs, prediction=pred, latency_ms=1.0, shadow=shadow,
            )  # fmt: skip


def test_deploy_refuses_a_version_that_did_not_pass_its_gates(project: Path) -> None:
    from keizoku.registry.backend import client

    client().delete_model_version_tag(MODEL, "2", "keizoku.gate")  # as if never gated
    out = cli(project, "deploy", MODEL, "--split", "champion=90,challenger=10")
    assert out.returncode == 8, out.stderr
    assert (
        "Alias 'challenger' of 'peng' points at version 2, which was never gated "
        "(tag keizoku.gate=absent); only a version that passed its gates, or the champion, "
        "may receive live traffic. Gate it with `keizoku retrain peng` or deploy another alias."
    ) in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr
    set_gate(2, "failed")
    out = cli(project, "deploy", MODEL, "--shadow", "challenger")
    assert out.returncode == 8 and "which failed its gates" in " ".join(out.stderr.split())
    assert not (project / ".keizoku" / "deployments" / f"{MODEL}.json").exists()
    assert _audit("deploy") == []


def test_abtest_counts_only_the_experiments_versions_since_it_started(project: Path) -> None:
    from keizoku.monitoring.feedback import record_feedback

    set_gate(2, "passed")
    before = time.time() - 3600
    # traffic before the split: champion rows that must not count
    _log([(f"pre{i}", 1, "champion", before + i, "Adelie") for i in range(80)])
    out = cli(project, "deploy", MODEL, "--split", "champion=50,challenger=50", "--no-wait")
    assert out.returncode == 0, out.stderr
    dep = json.loads((project / ".keizoku" / "deployments" / f"{MODEL}.json").read_text())
    assert dep["versions"] == {"champion": 1, "challenger": 2}
    exp_id = dep["experiment"]
    exp = json.loads((project / ".keizoku" / "experiments" / MODEL / f"{exp_id}.json").read_text())
    assert exp["status"] == "active"
    assert (exp["control"]["version"], exp["treatment"]) == (
        1, {"alias": "challenger", "version": 2})  # fmt: skip
    now = time.time()
    rows = [(f"c{i}", 1, "champion", now + i, "Adelie") for i in range(60)]
    rows += [(f"t{i}", 2, "challenger", now + i, "Adelie") for i in range(60)]
    # a version outside the experiment under the same alias name: must not count either
    rows += [(f"x{i}", 9, "challenger", now + i, "Gentoo") for i in range(40)]
    _log(rows)
    labels = [{"request_id": r[0], "label": "Adelie" if i % 2 else "Gentoo"}
              for i, r in enumerate(rows)]  # fmt: skip
    labels += [{"request_id": f"pre{i}", "label": "Adelie"} for i in range(80)]
    assert record_feedback(MODEL, labels) == len(labels)

    out = cli(project, "abtest", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["n_control"], result["n_treatment"]) == (60, 60)
    assert (result["control_version"], result["treatment_version"]) == (1, 2)
    assert result["experiment"] == exp_id
    entry = _audit("abtest")[-1]
    assert (entry["version"], entry["previous"]) == (2, 1)
    assert entry["evidence"]["experiment"] == exp_id

    # promoting anything but the treatment while the experiment runs is refused
    out = cli(project, "promote", MODEL, "1")
    assert out.returncode == 8
    assert f"runs split experiment {exp_id}" in " ".join(out.stderr.split())

    out = cli(project, "promote", MODEL, "2", "--force", "--reason", "won")
    assert out.returncode == 0, out.stderr
    promo = _audit("promote")[-1]
    assert promo["evidence"]["experiment"] == exp_id
    assert promo["evidence"]["abtest"]["experiment"] == exp_id
    exp = json.loads((project / ".keizoku" / "experiments" / MODEL / f"{exp_id}.json").read_text())
    assert exp["status"] == "promoted" and exp["ended"] is not None
    dep = json.loads((project / ".keizoku" / "deployments" / f"{MODEL}.json").read_text())
    assert (dep["versions"], dep["experiment"], dep["split"]) == ({}, None, {"champion": 100.0})

    out = cli(project, "rollback", MODEL, "--reason", "drill")
    assert out.returncode == 0, out.stderr
    from keizoku.registry.models import resolve

    assert resolve(f"{MODEL}@champion")[1] == 1


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket that listens on loopback ``port``."""
    inodes = {
        f"socket:[{fields[9]}]"
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A"  # 0A: LISTEN
    }
    held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    return bool(inodes & held)


def test_status_and_the_bounded_wait_name_the_server_that_disagrees(project: Path) -> None:
    from keizoku.registry.models import set_alias

    set_alias(MODEL, "challenger", 2)
    set_gate(2, "passed")
    fast = Server(project, "--poll-interval", "0.5")  # beats every 1 s (serving.app.MIN_BEAT_S)
    # never polls; beats every 1.25 s (--beat-interval: 5 s by default)
    slow = Server(project, "--poll-interval", "0", "--beat-interval", "1.25s")
    try:
        fast.wait_ready()  # both start at once
        slow.wait_ready()
        servers = project / ".keizoku" / "servers"
        until(lambda: len(list(servers.glob("*.json"))) >= 2, 30, "both servers' heartbeats")
        # each server's own pid (a fork server's child, not its client's): the process
        # that holds the socket listening on its port, as its heartbeat says
        pids = {b["port"]: b["pid"] for b in map(_read_json, servers.glob("*.json"))}
        fast_pid, slow_pid = pids[fast.port], pids[slow.port]
        assert _listens(fast_pid, fast.port) and _listens(slow_pid, slow.port), pids
        out = cli(project, "status", MODEL)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("agrees") == 2

        # a beat left by a dead process is ignored
        ghost = json.loads(next(servers.glob("*.json")).read_text())
        ghost.update(pid=2**22 + 7, models={MODEL: {"variants": {"champion": 7}}})
        (servers / "ghost.json").write_text(json.dumps(ghost))

        deployment = project / ".keizoku" / "deployments" / f"{MODEL}.json"
        before = deployment.read_bytes() if deployment.exists() else None
        split = ("deploy", MODEL, "--split", "champion=50,challenger=50")
        out = cli(project, *split, "--wait-timeout", "soon")  # read before anything changes
        assert out.returncode == 2, out.stdout + out.stderr
        assert "--wait-timeout 'soon' is not a duration" in " ".join(out.stderr.split())
        assert (deployment.read_bytes() if deployment.exists() else None) == before

        # 1 s is raised to a poll and a beat of the slowest server plus 1 s: 3.5 s (3 s for
        # the fast one alone)
        out = cli(project, *split, "--wait-timeout", "1s")
        assert out.returncode == 8, out.stdout + out.stderr
        err = " ".join(out.stderr.split())
        assert "--wait-timeout 1 s is raised to 3.5 s" in err
        assert f"pid {slow_pid} " in err and f"pid {fast_pid} " not in err
        assert "1 of 2 live server(s) of 'peng' still do not serve" in err
        assert "after 3.5 s" in err
        out = cli(project, "status", MODEL, "--json")
        assert out.returncode == 8
        status = json.loads(out.stdout)
        agree = {s["pid"]: s["agrees"] for s in status["servers"]}
        assert agree == {fast_pid: True, slow_pid: False}
        assert status["expected"] == {"champion": 1, "challenger": 2}

        out = cli(project, "deploy", MODEL, "--reset")
        assert out.returncode == 0, out.stderr
        assert "All 2 live server(s) of 'peng' serve {'champion': 1}" in out.stderr
        out = cli(project, "status", MODEL)
        assert out.returncode == 0, out.stdout
    finally:
        Server.stop_all((fast, slow))
    beat = project / ".keizoku" / "servers" / f"{os.uname().nodename}-{fast_pid}.json"
    # a loaded machine can finish the shutdown late
    until(lambda: not beat.exists(), 30, "a server that stopped cleanly removes its heartbeat")
