"""Helpers for the tests of servers whose store is empty, or goes away and comes back."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kzsupport import free_port, until  # noqa: F401 (until: imported from here too)
from pgsupport import PENGUINS, Postgres, data_folder, server_folder, start_server, stop_server

RECORDS = [
    {k: (None if v != v else v) for k, v in r.items()}
    for r in pd.read_csv(PENGUINS).drop(columns="species").head(20).to_dict("records")
]


@dataclass
class OwnPostgres(Postgres):
    """A PostgreSQL server this module may ``stop()`` and ``start()`` again."""

    root: Path = field(default_factory=Path)

    def start(self) -> None:
        start_server(self.root, self.port)

    def stop(self) -> None:
        stop_server(self.root, "fast")  # ends every session: servers lose connections


@contextmanager
def own_postgres_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the caller's own (from a copy of the run's ``initdb``), in a
    temporary folder, stopped and removed at the end (the caller checks
    ``pgsupport.why_no_postgres()`` first)."""
    root = server_folder("keizoku-own-pg-")
    pg = OwnPostgres(free_port(), root=root)
    try:
        data_folder(root)
        pg.start()
        yield pg
    finally:
        stop_server(root, "fast")
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
    answers: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, status)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                record = RECORDS[i % len(RECORDS)]
                i += 1
                try:
                    r = client.post(f"/v1/models/{self.model}/predict", json=record,
                                    headers=headers)  # fmt: skip
                    self.answers.append((time.monotonic(), r.status_code))
                except httpx.HTTPError:  # a refused connection is a failed request
                    self.answers.append((time.monotonic(), 0))
                time.sleep(0.02)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread
