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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from kzsupport import KEIZOKU_EXE as KEIZOKU

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


@contextlib.contextmanager
def serving(cwd: Path, env: dict[str, str]) -> Iterator[tuple[httpx.Client, int]]:
    """``keizoku serve -m loop`` on a free loopback port (polling every 0.1 s), ready."""
    port = free_port()
    log = open(cwd / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [KEIZOKU, "serve", "--port", str(port), "--poll-interval", "0.1", "--log-level",
         "warning", "-m", "loop"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, (cwd / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    break
            time.sleep(0.2)
        yield client, port
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


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

    with serving(tmp_path, env) as (client, port):
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
            swapped, deadline = len(seen), time.monotonic() + 30
            while len(seen) < swapped + 20 and not failures and time.monotonic() < deadline:
                time.sleep(0.05)  # requests go on after the swap: none may fail
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


def planted(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Data keizoku does not ship: scikit-learn's make_classification, generated here.

    Returns (clean first half, second half). The second half has a planted population
    shift (``f0`` moved by three standard deviations, ``f1`` stretched) and its labels
    flipped at random (each label replaced by a coin toss, independent of the features).
    """
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_features=5, n_informative=3, n_redundant=0,
                               class_sep=1.5, random_state=seed)  # fmt: skip
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    frame["y"] = y
    first, second = frame.iloc[:2000].copy(), frame.iloc[2000:].reset_index(drop=True)
    second["f0"] = second["f0"] + 3.0
    second["f1"] = second["f1"] * 1.5
    second["y"] = np.random.default_rng(seed).integers(0, 2, len(second))
    return first, second


def logged_versions(home: Path) -> dict[int, int]:
    """version → requests it answered (shadow answers included), from the prediction log."""
    import duckdb

    glob = str(home / "predictions" / "loop" / "*.parquet")
    rows = duckdb.connect().execute(f"select version, count(*) from '{glob}' group by 1").fetchall()
    return {int(v): int(n) for v, n in rows}


def test_the_loop_on_planted_data_no_ungated_version_answers(tmp_path: Path) -> None:
    """init → train (v1) → train on more rows (v2, challenger) → serve → 80/20 split →
    shifted traffic with random labels → invalid labels refused → ``retrain`` on the bad
    labels fails its gates (exit 6) → ``loop --once`` (6, then 0: nothing new) → promote v2
    → rollback; the prediction log shows that no ungated version answered a request."""
    home = tmp_path / ".keizoku"
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    kz = Keizoku(tmp_path, env)
    first, second = planted()
    first.iloc[:1000].to_csv(tmp_path / "train.csv", index=False)
    kz("init", "train.csv", "--target", "y", "--name", "loop")
    with open(tmp_path / "keizoku.yaml", "a") as fh:
        fh.write(
            "retraining:\n"
            "  triggers: {drift_features: 1, metric_drop: null, new_labels: null, every: null}\n"
            "  window: {since: 1d, include_original: false, holdout: 0.3, min_labels: 100}\n"
            "  train: {budget: 30s, preset: fast, max_trials: 2}\n"
            "  gates: {min_gain: -0.05, bootstrap: 300, max_latency_increase: 1000}\n"
            "  cooldown: 1h\n"
        )
    train = ("train", "--budget", "30s", "--preset", "fast", "--max-trials", "2")
    assert "as champion" in " ".join(kz(*train).stdout.split())
    first.iloc[:1600].to_csv(tmp_path / "train.csv", index=False)  # 600 rows v1 never saw
    out = kz(*train, ok=False)
    assert out.returncode == 0 and "is the challenger" in " ".join(out.stdout.split()), (
        out.stdout + out.stderr
    )

    with serving(tmp_path, env) as (client, _):
        kz("deploy", "loop", "--split", "champion=80,challenger=20")
        probe = second.iloc[:20]
        wait_for(client, probe, lambda items: {it["version"] for it in items} == {1, 2})
        items = traffic(client, kz, second.iloc[:1000])
        wait_logged(home, 1020)
        assert {it["version"] for it in items} == {1, 2}

        # labels for unknown predictions, or outside the classes: 4xx, nothing stored
        unknown = client.post("/v1/models/loop/feedback",
                              json={"request_id": "no-such-id", "label": 1})  # fmt: skip
        assert unknown.status_code in (404, 422) and "no-such-id" in unknown.text, unknown.text
        rid = items[0]["request_id"]
        maybe = client.post("/v1/models/loop/feedback", json={"request_id": rid, "label": "maybe"})
        assert maybe.status_code == 422 and "maybe" in maybe.text, maybe.text

        drift = kz("monitor", "loop", "--since", "1h", ok=False)
        assert drift.returncode == 10, drift.stdout + drift.stderr

        bad = kz("retrain", "loop", "--force", ok=False)
        assert bad.returncode == 6, bad.stdout + bad.stderr
        assert "loop:3 failed its gates" in " ".join(bad.stderr.split()), bad.stderr
        assert "baseline" in bad.stdout
        states = kz("models", "loop").stdout
        assert "gated-fail" in states, states
        status = json.loads(kz("status", "loop", "--json").stdout)  # exit 0: servers agree
        assert status["aliases"] == {"champion": 1, "challenger": 2}, status  # untouched
        assert status["expected"] == {"champion": 1, "challenger": 2} and status["agree"], status

        # the loop: the drift trigger fires, the retrain on the same bad labels fails (6);
        # at once again: nothing new, no retrain (0)
        tick = kz("loop", "loop", "--once", ok=False)
        assert tick.returncode == 6, tick.stdout + tick.stderr
        assert "drift in" in " ".join(tick.stdout.split())
        again = kz("loop", "loop", "--once", ok=False)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing new since the last retrain attempt" in " ".join(again.stdout.split())

        traffic(client, kz, second.iloc[1000:1200])  # the failed versions answer none of it
        kz("promote", "loop", "2", "--reason", "gated challenger, drill")
        wait_for(client, probe, lambda items: {it["version"] for it in items} == {2})
        kz("rollback", "loop", "--reason", "drill")
        wait_for(client, probe, lambda items: {it["version"] for it in items} == {1})

    wait_logged(home, 20 + 1000 + 200 + 20 + 20)  # the server flushed its log as it stopped
    answered = logged_versions(home)
    history = [json.loads(line) for line in kz("history", "loop", "--json", "--limit", "1000")
               .stdout.splitlines()]  # fmt: skip
    gated = {h["version"] for h in history if h["action"] == "gate"
             and h["evidence"]["transition"]["to"] == "gated-pass"}  # fmt: skip
    first_version = {h["version"] for h in history if h["action"] == "admit"
                     and h["reason"].startswith("first version")}  # fmt: skip
    failed = {h["version"] for h in history if h["action"] == "gate"
              and h["evidence"]["transition"]["to"] == "gated-fail"}  # fmt: skip
    assert failed and not failed & set(answered), (failed, answered)
    assert set(answered) <= gated | first_version, (answered, gated, first_version)
    assert answered.get(1, 0) > 0 and answered.get(2, 0) > 0, answered
    assert kz("history", "loop", "--verify").returncode == 0
