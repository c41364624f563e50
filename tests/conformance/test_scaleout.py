"""Several servers, one truth: two ``keizoku serve`` processes on one PostgreSQL store and
one shared log folder, under traffic, while a promote and a key revocation happen.

As behind a load balancer: each server has its own home folder (nothing shared there);
keys, aliases, deployments and heartbeats come from ``KEIZOKU_STORE``, the prediction log
goes to ``KEIZOKU_LOG_ROOT``. Checked through the real executable: no request with a valid
key fails while the champion changes; ``promote`` returns only once both servers report the
new version (its bounded wait, exit 0); a key revoked in a third home stops working on both
servers within the guard's key cache (``--key-cache 0.5s``); every answered prediction is in
the shared log once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest

from keizoku.monitoring.log import segment_files
from kzsupport import REPO, Server
from pgsupport import Postgres, keizoku, postgres, trained_penguins  # noqa: F401 (the fixture)
from store_outage_support import until

pytestmark = pytest.mark.slow

PENGUINS = REPO / "examples" / "data" / "penguins.csv"
RECORDS = [
    {k: (None if v != v else v) for k, v in r.items()}
    for r in pd.read_csv(PENGUINS).drop(columns="species").head(20).to_dict("records")
]


@dataclass
class Traffic:
    """One thread posting predictions to one server with one key until stopped."""

    server: Server
    key: str
    # (monotonic time the request was sent, status, request id, version): what a request
    # sent after a moment gets, however long the answer takes on a loaded machine
    answers: list[tuple[float, int, str | None, int | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.server.url, timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                record = RECORDS[i % len(RECORDS)]
                i += 1
                sent = time.monotonic()
                try:
                    r = client.post("/v1/models/penguins/predict", json=record, headers=headers)
                except httpx.HTTPError as exc:  # a refused connection is a failed request
                    self.answers.append((sent, 0, repr(exc), None))
                    continue
                body = r.json() if r.status_code == 200 else {}
                self.answers.append(
                    (sent, r.status_code, body.get("request_id"), body.get("version"))
                )
                time.sleep(0.02)


def _v1_before(traffic: Traffic, moment: float) -> bool:
    return any(v == 1 for ts, _, _, v in traffic.answers if ts < moment)


def _any_after(traffic: Traffic, moment: float) -> bool:
    return any(ts > moment for ts, _, _, _ in traffic.answers)


@pytest.fixture
def store(postgres: Postgres, tmp_path: Path) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """A database with penguins v1 (champion) and v2 trained, and a shared log folder."""
    url = postgres.database()
    shared = tmp_path / "shared-log"
    os.environ["KEIZOKU_LOG_ROOT"] = str(shared)  # every command and server below
    try:
        trained_penguins(tmp_path / "a", url, versions=2)  # v2's gates may have refused it
        yield url, shared
    finally:
        os.environ.pop("KEIZOKU_LOG_ROOT", None)


def test_two_servers_under_traffic_through_a_promote_and_a_revocation(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, shared = store
    ops = tmp_path / "ops"  # a third home: the operator's machine
    web = keizoku(ops, url, "keys", "create", "--role", "predict", "--name", "web").out.strip()
    doomed = keizoku(ops, url, "keys", "create", "--role", "predict", "--name", "doomed")
    assert web.startswith("kz_") and doomed.code == 0, doomed.text
    servers: list[Server] = []
    traffic: list[Traffic] = []
    try:
        for name in ("s1", "s2"):
            env = {**os.environ, "KEIZOKU_HOME": str(tmp_path / name / ".keizoku"),
                   "KEIZOKU_STORE": url}  # fmt: skip
            env.pop("KEIZOKU_TRACKING_URI", None)
            (tmp_path / name).mkdir()
            servers.append(Server(tmp_path / name, "--poll-interval", "1", "--key-cache", "0.5s",
                                  env=env))  # fmt: skip
        for server in servers:
            server.wait_ready(300)
        traffic = [Traffic(s, web) for s in servers] + [Traffic(s, doomed.out.strip())
                                                         for s in servers]  # fmt: skip
        threads = [threading.Thread(target=t.run, daemon=True) for t in traffic]
        for thread in threads:
            thread.start()
        until(lambda: all(_v1_before(t, time.monotonic() - 1.1) for t in traffic[:2]), 60,
              "each server answered v1 over a second ago")  # fmt: skip
        promoted = keizoku(ops, url, "promote", "penguins", "2", "--force", "--reason", "scale")
        assert promoted.code == 0, promoted.text  # both servers reported v2 within the wait
        promoted_at = time.monotonic()
        revoked = keizoku(ops, url, "keys", "revoke", "doomed")
        assert revoked.code == 0, revoked.text
        revoked_at = time.monotonic()
        until(lambda: all(_any_after(t, revoked_at + 1.5) for t in traffic[2:]), 60,
              "answers past the guard's 0.5 s key cache")  # fmt: skip
    finally:
        for t in traffic:
            t.stop.set()
        codes = Server.stop_all(servers)
    assert codes == [0, 0], [s.output()[-2000:] for s in servers]

    valid = [a for t in traffic[:2] for a in t.answers]
    assert len(valid) > 20 and all(code == 200 for _, code, _, _ in valid), [
        a for a in valid if a[1] != 200
    ][:5]
    for t in traffic[:2]:  # each server answers v2 from the moment promote returned
        assert {v for ts, _, _, v in t.answers if ts > promoted_at} == {2}
        assert 1 in {v for ts, _, _, v in t.answers if ts < promoted_at - 1}
    for t in traffic[2:]:  # the revoked key: 200 before, 401 once the cache ran out
        assert all(code in (200, 401) for _, code, _, _ in t.answers)
        assert all(code == 401 for ts, code, _, _ in t.answers if ts > revoked_at + 1.5)
        assert any(code == 200 for ts, code, _, _ in t.answers if ts < revoked_at)

    answered = [str(rid) for t in traffic for _, code, rid, _ in t.answers if code == 200]
    files = segment_files("penguins", shared)
    logged = pd.concat([pd.read_parquet(f, columns=["request_id"]) for f in files])
    assert sorted(logged["request_id"]) == sorted(answered)  # each one, once
    writers = {Path(f).name.split("-", 2)[2].rsplit("-", 1)[0] for f in files}
    assert len(writers) == 2  # both servers wrote to the one folder
    assert not any((tmp_path / n / ".keizoku" / "predictions").exists() for n in ("s1", "s2"))
