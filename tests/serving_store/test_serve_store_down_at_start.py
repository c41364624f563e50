"""A server started while its store does not answer: the state of an outage mid-run
(decision 0028), not an exit. Through the real executable on a real PostgreSQL server:
started while PostgreSQL is stopped, ``/healthz`` 200, ``/readyz`` and predict 503
``store_unavailable`` with ``Retry-After``; PostgreSQL started, the same server loads the
model and answers predictions, without a restart. A malformed or unsupported
``KEIZOKU_STORE`` is configuration: exit 2 with one line, before anything listens."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kzsupport import KEIZOKU_EXE, Server
from pgsupport import trained_penguins, why_no_postgres
from store_outage_support import RECORDS, own_postgres_server, server_env, until

PREDICT = "/v1/models/penguins/predict"


def _answers(server: Server, path: str) -> bool:
    return bool(server.client.get(path).status_code == 200)


def _store_unavailable(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "store_unavailable", answer.text
    assert "does not answer" in answer.text
    assert int(answer.headers["Retry-After"]) >= 1


@pytest.mark.slow
def test_a_server_started_while_postgres_is_down_recovers_by_itself(tmp_path: Path) -> None:
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    with own_postgres_server() as pg:
        url = pg.database()
        trained_penguins(tmp_path / "project", url)
        pg.stop()
        servers = [  # one discovering, one told its model: both wait for the store
            Server(tmp_path, "--poll-interval", "1", env=server_env(tmp_path / "a", url)),
            Server(tmp_path, "--poll-interval", "1", "--model", "penguins",
                   env=server_env(tmp_path / "b", url)),
        ]  # fmt: skip
        try:
            for server in servers:
                until(partial(_answers, server, "/healthz"), 120,
                      "the server listens although the store is down")  # fmt: skip
                ready = server.client.get("/readyz")
                _store_unavailable(ready)
                assert ready.json()["ready"] is False
                _store_unavailable(server.client.post(PREDICT, json=RECORDS[0]))
                assert server.proc.poll() is None
            pg.start()
            for server in servers:
                until(partial(_answers, server, "/readyz"), 120,
                      "the server loads the model once the store answers")  # fmt: skip
                assert server.client.get("/readyz").json()["models"] == {
                    "penguins": {"champion": 1}
                }
                for record in RECORDS[:5]:
                    answer = server.client.post(PREDICT, json=record)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["prediction"] in ("Adelie", "Chinstrap", "Gentoo")
        finally:
            codes = Server.stop_all(servers)
        assert codes == [0, 0], [s.output()[-2000:] for s in servers]
        assert "warning: The store does not answer" in servers[0].output()


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ("mysql://u@127.0.0.1:3306/kz", "names the store kind 'mysql'"),
        ("postgresql://u@127.0.0.1:notaport/kz", "the port must be a number"),
        ("postgresql://u@127.0.0.1:5432/", "names no database"),
    ],
)
def test_a_malformed_store_url_is_configuration_exit_2(
    tmp_path: Path, store: str, says: str
) -> None:
    env = server_env(tmp_path, store)
    done = subprocess.run([KEIZOKU_EXE, "serve", "--port", "9"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "KEIZOKU_STORE" in lines[0], lines
    assert "Uvicorn running" not in done.stdout + done.stderr
