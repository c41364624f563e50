"""Helpers for the tests of servers whose store is empty, or goes away and comes back."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kzsupport import free_port, until  # noqa: F401 (until: imported from here too)
from pgsupport import PENGUINS, Postgres, pg_bin

RECORDS = [
    {k: (None if v != v else v) for k, v in r.items()}
    for r in pd.read_csv(PENGUINS).drop(columns="species").head(20).to_dict("records")
]


@dataclass
class OwnPostgres(Postgres):
    """A PostgreSQL server this module may ``stop()`` and ``start()`` again."""

    root: Path = field(default_factory=Path)
    as_user: list[str] = field(default_factory=list)

    def _ctl(self, *args: str) -> None:
        pg_ctl = pg_bin("pg_ctl")
        assert pg_ctl
        subprocess.run([*self.as_user, pg_ctl, "-D", str(self.root / "data"), *args],
                       check=True, capture_output=True, timeout=120)  # fmt: skip

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.root / "server.log"), "-w", "-o", opts, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")  # ends every session: servers lose connections


@contextmanager
def own_postgres_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the caller's own, in a temporary folder, stopped and removed
    at the end (the caller checks ``pgsupport.why_no_postgres()`` first)."""
    initdb = pg_bin("initdb")
    assert initdb
    root = Path(tempfile.mkdtemp(prefix="keizoku-own-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pg = OwnPostgres(free_port(), root=root, as_user=as_user)
    try:
        # --no-sync: initdb's final sync of every file it wrote is for a lasting cluster;
        # this one lives for a module (and runs with fsync=off)
        subprocess.run([*as_user, initdb, "-D", str(root / "data"), "-U", "keizoku",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        pg.start()
        yield pg
    finally:
        if (root / "data" / "postmaster.pid").exists():
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def server_env(home: Path, store: str | None) -> dict[str, str]:
    """The environment of a server with its own home on ``store`` (None: embedded)."""
    env = {**os.environ, "KEIZOKU_HOME": str(home / ".keizoku")}
    for name in ("KEIZOKU_TRACKING_URI", "KEIZOKU_ARTIFACT_ROOT", "KEIZOKU_STORE"):
        env.pop(name, None)
    if store is not None:
        env["KEIZOKU_STORE"] = store
    home.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Traffic:
    """One thread posting predictions to one server with one key until ``stop`` is set."""

    url: str
    key: str | None = None
    model: str = "penguins"
    # (monotonic time the request was sent, status): what a request sent after a moment
    # gets, however long the answer takes on a loaded machine
    answers: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                record = RECORDS[i % len(RECORDS)]
                i += 1
                sent = time.monotonic()
                try:
                    r = client.post(f"/v1/models/{self.model}/predict", json=record,
                                    headers=headers)  # fmt: skip
                    self.answers.append((sent, r.status_code))
                except httpx.HTTPError:  # a refused connection is a failed request
                    self.answers.append((sent, 0))
                time.sleep(0.02)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread
