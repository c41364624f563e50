"""The whole loop on planted data, with the real server over loopback.

train on one slice → serve → traffic from a shifted slice (x1 moved, colour mix
changed, label relationship flipped) → labels → ``monitor`` flags x1 and colour,
not x2/x3 → ``retrain`` yields a challenger that beats the champion and passes
the gates → a 50/50 split → ``abtest`` decides → ``promote`` with no failed
request → ``rollback`` → ``history`` shows every step.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

KEIZOKU = str(Path(sys.executable).with_name("keizoku"))
pytestmark = pytest.mark.slow


def make(n: int, seed: int, shift: bool) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    x1 = r.normal(1.5 if shift else 0.0, 1, n)
    x2 = r.normal(0, 1, n)
    x3 = r.uniform(0, 10, n)
    color = r.choice(["red", "green", "blue"], n, p=[0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2])
    if shift:  # the relationship changes: a retrained model must be better
        logit = -2.0 * x1 + 2.5 * x2 + 2.0
    else:
        logit = 2.0 * x1 - 1.5 * x2 + 0.1 * x3 - 0.5 + np.where(color == "red", 1.0, 0.0)
    y = (r.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "color": color, "y": y})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Keizoku:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KEIZOKU, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
            timeout=240,
        )  # fmt: skip
        if ok:
            assert proc.returncode == 0, f"keizoku {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "--json").stdout)


def predict(client: httpx.Client, rows: pd.DataFrame) -> list[dict]:
    records = rows.drop(columns="y").to_dict(orient="records")
    r = client.post("/v1/models/loop/predict", json=records)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def send_labels(client: httpx.Client, kz: Keizoku, items: list[dict], labels: list[int]) -> None:
    body = [
        {"request_id": it["request_id"], "label": int(y)}
        for it, y in zip(items, labels, strict=True)
    ]
    r = client.post("/v1/models/loop/feedback", json=body)
    if r.status_code == 404:  # the server does not mount the feedback route: use the CLI
        path = kz.cwd / f"labels-{time.time_ns()}.csv"
        pd.DataFrame(body).to_csv(path, index=False)
        kz("feedback", "loop", str(path))
    else:
        assert r.status_code == 200, r.text


def traffic(client: httpx.Client, kz: Keizoku, frame: pd.DataFrame) -> list[dict]:
    items: list[dict] = []
    for start in range(0, len(frame), 100):
        items += predict(client, frame.iloc[start : start + 100])
    send_labels(client, kz, items, frame["y"].tolist())
    return items


def wait_logged(home: Path, n: int, timeout: float = 20) -> None:
    import duckdb

    glob = str(home / "predictions" / "loop" / "*.parquet")
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(duckdb.Error):
            count = duckdb.connect().execute(f"select count(*) from '{glob}'").fetchone()[0]  # type: ignore[index]
            if count >= n:
                return
        time.sleep(0.3)
    raise AssertionError(f"only {count} of {n} predictions reached the log")


def wait_for(client: httpx.Client, frame: pd.DataFrame, check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check(predict(client, frame)):
            return
        time.sleep(0.3)
    raise AssertionError("the server did not pick up the alias/deployment change")


def test_the_loop(tmp_path: Path) -> None:
    home = tmp_path / ".keizoku"
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    kz = Keizoku(tmp_path, env)
    make(2000, 0, False).to_csv(tmp_path / "train.csv", index=False)
    shifted = make(3000, 1, True)
    kz("init", "train.csv", "--target", "y", "--name", "loop")
    spec = (tmp_path / "keizoku.yaml").read_text()
    spec += (
        "retraining:\n  window: {since: 1d, include_original: false, holdout: 0.3, "
        "min_labels: 200}\n  train: {budget: 60s, preset: fast, max_trials: 4}\n"
        "  gates: {min_gain: 0.0, bootstrap: 300}\n"
    )
    (tmp_path / "keizoku.yaml").write_text(spec)
    kz("train", "--budget", "60s", "--preset", "fast", "--max-trials", "4")

    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [KEIZOKU, "serve", "--port", str(port), "--poll-interval", "0.3", "--log-level",
         "warning", "-m", "loop"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    break
            time.sleep(0.2)

        # traffic from the shifted slice, with labels
        traffic(client, kz, shifted.iloc[:1200])
        wait_logged(home, 1200)

        drift = kz("monitor", "loop", "--since", "1h", "--html", "drift.html", "--json", ok=False)
        assert drift.returncode == 10, drift.stderr  # drift found: the documented exit code
        report = json.loads(drift.stdout)
        assert set(report["drifted"]) == {"x1", "color"}, report["drifted"]
        assert report["performance"]["n_labels"] == 1200
        assert (tmp_path / "drift.html").read_text().count("<svg") >= 5

        outcome = json.loads(kz("retrain", "loop", "--force", "--json").stdout)
        assert outcome["status"] == "passed", outcome
        assert outcome["stats"]["low"] > 0
        challenger = outcome["version"]
        assert challenger == 2

        # a 50/50 split: each variant gets its share
        kz("deploy", "loop", "--split", "champion=50,challenger=50")
        probe = shifted.iloc[:20]
        wait_for(client, probe, lambda items: {it["variant"] for it in items} == {
            "champion", "challenger"})  # fmt: skip
        items = traffic(client, kz, shifted.iloc[1200:2400])
        share = np.mean([it["variant"] == "challenger" for it in items])
        assert 0.42 < share < 0.58, share
        assert {it["version"] for it in items if it["variant"] == "challenger"} == {challenger}
        wait_logged(home, 2400 + 20)

        ab = kz.json("abtest", "loop", "--metric", "accuracy")
        assert ab["decision"] == "promote", ab
        assert "mSPRT" in ab["method"]

        # promote while requests flow: none may fail
        failures: list[str] = []
        seen: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                rec = shifted.drop(columns="y").iloc[0].to_dict()
                while not stop.is_set():
                    r = c.post("/v1/models/loop/predict", json=rec)
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        seen.append(r.json()["version"])

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            kz("deploy", "loop", "--reset")
            kz("promote", "loop", str(challenger), "--reason", "won the A/B test")
            wait_for(client, probe, lambda items: {it["version"] for it in items} == {challenger})
            time.sleep(0.5)
        finally:
            stop.set()
            worker.join()
        assert not failures, failures[:3]
        assert seen and seen[-1] == challenger and 1 in seen

        kz("rollback", "loop", "--reason", "drill")
        wait_for(client, probe, lambda items: {it["version"] for it in items} == {1})

        history = [json.loads(line) for line in kz("history", "loop", "--json").stdout.splitlines()]
        steps = ("register", "admit", "gate", "retrain", "abtest", "promote", "rollback")
        actions = [h["action"] for h in history if h["action"] in steps]
        assert actions == ["register", "admit", "register", "gate", "admit", "retrain",
                           "abtest", "promote", "rollback"], actions  # fmt: skip
        history = [h for h in history if h["action"] in steps[3:]]
        assert kz("history", "loop", "--verify").returncode == 0
        assert history[2]["reason"] == "won the A/B test" and history[2]["previous"] == 1
        table = kz("history", "loop").stdout
        assert "promote" in table and "rollback" in table
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
