"""A store that goes away while a server answers: 503 with ``Retry-After``, then recovery.

Through the real executable: PostgreSQL is stopped under traffic and started again, and the
embedded registry's SQLite file is made unreadable and mended. Predictions from the loaded
model go on throughout (keys seen valid before the outage keep working); what needs the
store answers 503 in keizoku's error format with ``Retry-After``, never 400 or 500; once the
store is back the same server answers it again, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kzsupport import Server
from pgsupport import keizoku, trained_penguins
from store_outage_support import RECORDS, OwnPostgres, Traffic, server_env, until

pytestmark = pytest.mark.slow
DETAIL = "/v1/models/penguins"


def _unavailable(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "store_unavailable"
    assert "does not answer" in answer.json()["message"]
    assert int(answer.headers["Retry-After"]) >= 1


def _answers_after(traffic: Traffic, moment: float) -> list[int]:
    return [code for t, code in traffic.answers if t > moment]


@pytest.fixture(scope="module")
def trained_pg(
    own_postgres: OwnPostgres, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A PostgreSQL store with penguins v1 (champion), a predict key and an admin key."""
    url = own_postgres.database()
    a = trained_penguins(tmp_path_factory.mktemp("pg-project"), url)
    keys = {role: keizoku(a, url, "keys", "create", "--role", role, "--name", role).out.strip()
            for role in ("predict", "admin")}  # fmt: skip
    assert all(k.startswith("kz_") for k in keys.values()), keys
    return {"url": url, **keys}


def test_postgres_stopped_mid_traffic_then_started_again(
    own_postgres: OwnPostgres, trained_pg: dict[str, str], tmp_path: Path
) -> None:
    server = Server(tmp_path, "--poll-interval", "1", "--key-cache", "0.5s",
                    env=server_env(tmp_path, trained_pg["url"])).wait_ready(300)  # fmt: skip
    admin = {"Authorization": f"Bearer {trained_pg['admin']}"}
    traffic = Traffic(server.url, trained_pg["predict"])
    stopped = False
    try:
        assert (
            server.client.post("/v1/admin/models/penguins/reload", headers=admin).status_code == 200
        )
        traffic.start()
        until(lambda: len(traffic.answers) > 10, 60, "traffic before the outage")
        own_postgres.stop()
        stopped, stopped_at = True, time.monotonic()
        # past the server's 0.5 s key cache: keys are looked up again
        until(lambda: len(_answers_after(traffic, stopped_at + 1.5)) > 10, 60,
              "answers through the outage")  # fmt: skip

        _unavailable(server.client.get(DETAIL, headers=admin))  # the registry is away
        never_seen = {"Authorization": "Bearer kz_never_seen_before_0000000000"}
        _unavailable(server.client.post(f"{DETAIL}/predict", json=RECORDS[0], headers=never_seen))
        reload = server.client.post("/v1/admin/models/penguins/reload", headers=admin)
        assert reload.status_code == 503, reload.text
        assert server.client.get("/readyz").status_code == 200  # the loaded model still answers
        assert server.proc.poll() is None

        own_postgres.start()
        stopped, started_at = False, time.monotonic()
        until(lambda: server.client.get(DETAIL, headers=admin).status_code == 200, 60,
              "the registry answers again")  # fmt: skip
        assert (
            server.client.post("/v1/admin/models/penguins/reload", headers=admin).status_code == 200
        )
        reloaded_at = time.monotonic()
        until(lambda: _answers_after(traffic, reloaded_at), 60, "traffic after the reload")
    finally:
        traffic.stop.set()
        if stopped:
            own_postgres.start()
        code = server.stop()
    assert code == 0, server.output()[-3000:]
    codes = [c for _, c in traffic.answers]
    assert codes and set(codes) == {200}, sorted(set(codes))
    during = [c for t, c in traffic.answers if stopped_at + 1.5 < t < started_at]
    assert len(during) > 10  # predictions went on through the outage, past the key cache


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded home (SQLite registry) with penguins v1 as champion."""
    return trained_penguins(tmp_path_factory.mktemp("embedded"), "embedded")


@pytest.fixture
def unreadable(trained_home: Path) -> Iterator[tuple[Path, bytes]]:
    """The registry file and its first bytes, put back after the test."""
    db = trained_home / ".keizoku" / "mlflow.db"
    header = db.read_bytes()[:16]
    yield db, header
    with db.open("r+b") as fh:
        fh.write(header)


def test_an_unreadable_sqlite_registry_answers_503_then_recovers(
    trained_home: Path, unreadable: tuple[Path, bytes]
) -> None:
    db, header = unreadable
    server = Server(trained_home, "--poll-interval", "1").wait_ready(300)
    try:
        assert server.client.get(DETAIL).status_code == 200
        with db.open("r+b") as fh:  # SQLite's magic string overwritten: "not a database"
            fh.write(b"not a database!\0")
        _unavailable(server.client.get(DETAIL))
        for record in RECORDS[:5]:  # the loaded model needs no registry
            assert server.client.post(f"{DETAIL}/predict", json=record).status_code == 200
        with db.open("r+b") as fh:
            fh.write(header)
        until(lambda: server.client.get(DETAIL).status_code == 200, 30, "the registry is read")
    finally:
        code = server.stop()
    assert code == 0, server.output()[-3000:]
