"""``keizoku serve`` on a store with nothing to serve yet: it starts, and waits.

Through the real executable on a real PostgreSQL store: a server without ``--model`` on an
empty database stays up (``/healthz`` 200), is not ready (``/readyz`` 503 with the reason),
answers predictions 503 in keizoku's error format with ``Retry-After``, and serves each
model registered later within the bounded wait ``promote`` uses; a server started with
``--model`` serves that model only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keizoku.lifecycle.servers import MIN_WAIT_S
from kzsupport import KEIZOKU_EXE, Server
from pgsupport import Postgres, keizoku, postgres  # noqa: F401 (the fixture)
from store_outage_support import PENGUINS, RECORDS, server_env, until

pytestmark = pytest.mark.slow
PREDICT = "/v1/models/{}/predict"
# Any registered model will do (the subject is the server picking it up): the cheapest search
CHEAPEST = ("--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1")


def _served(server: Server) -> dict[str, object]:
    answer = server.client.get("/readyz")
    return answer.json().get("models", {}) if answer.status_code == 200 else {}


def test_a_server_on_an_empty_store_waits_and_picks_up_each_new_model(
    postgres: Postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.database()
    discovering = Server(tmp_path / "s1", "--poll-interval", "1",
                         env=server_env(tmp_path / "s1", url))  # fmt: skip
    pinned: Server | None = None
    try:
        until(lambda: discovering.client.get("/healthz").status_code == 200, 120, "liveness")
        ready = discovering.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert "No model is registered yet" in ready.json()["reason"]
        early = discovering.client.post(PREDICT.format("penguins"), json=RECORDS[0])
        assert early.status_code == 503, early.text
        assert early.json()["error"] == "not_ready"
        assert "keizoku train" in early.json()["message"]
        assert int(early.headers["Retry-After"]) >= 1
        assert discovering.client.get("/v1/models").json()["models"] == []
        assert discovering.proc.poll() is None  # still running: no crash loop

        a = tmp_path / "a"
        assert keizoku(a, url, "init", str(PENGUINS), "-t", "species").code == 0
        trained = keizoku(a, url, "train", *CHEAPEST)
        assert trained.code == 0, trained.text
        until(lambda: "penguins" in _served(discovering), MIN_WAIT_S, "penguins picked up")
        answer = discovering.client.post(PREDICT.format("penguins"), json=RECORDS[0])
        assert answer.status_code == 200 and answer.json()["version"] == 1, answer.text

        pinned = Server(tmp_path / "s2", "--poll-interval", "1", "--model", "penguins",
                        env=server_env(tmp_path / "s2", url)).wait_ready(300)  # fmt: skip
        b = tmp_path / "b"
        assert keizoku(b, url, "init", str(PENGUINS), "-t", "species", "--name", "birds").code == 0
        trained = keizoku(b, url, "train", *CHEAPEST)
        assert trained.code == 0, trained.text
        until(lambda: "birds" in _served(discovering), MIN_WAIT_S, "birds picked up")
        assert discovering.client.post(PREDICT.format("birds"), json=RECORDS[1]).status_code == 200

        assert set(_served(pinned)) == {"penguins"}  # --model penguins: that one only
        other = pinned.client.post(PREDICT.format("birds"), json=RECORDS[1])
        assert other.status_code == 404 and other.json()["error"] == "not_found", other.text
        listed = [m["name"] for m in pinned.client.get("/v1/models").json()["models"]]
        assert listed == ["penguins"]
    finally:
        codes = Server.stop_all((discovering, pinned))
    assert codes == [0] * len(codes), discovering.output()[-3000:]


def test_poll_interval_0_on_an_empty_store_exits_3_naming_the_fix(
    postgres: Postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    import subprocess

    url = postgres.database()
    done = subprocess.run([KEIZOKU_EXE, "serve", "--poll-interval", "0", "--port", "1"],
                          env=server_env(tmp_path, url), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "No model is registered yet" in done.stderr
    assert "--poll-interval 0" in done.stderr
