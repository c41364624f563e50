"""A trained penguins home for the rollout tests, built once per test process and copied.

``trained_copy(dest)`` gives a fresh ``KEIZOKU_HOME`` at ``dest`` holding model ``peng``:
version 1 (champion) and version 2 (challenger: it passed lenient gates), trained by the
real ``keizoku train`` on examples/data/penguins.csv with two trials each. The template is
trained once; each caller gets its own copy of the registry database (the artifacts
it points at are read-only), so tests cannot see each other's deployments or logs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kzsupport import KEIZOKU_EXE, REPO

MODEL = "peng"
_template: Path | None = None


def _run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _train_template() -> Path:
    root = Path(tempfile.mkdtemp(prefix="keizoku-rollout-template-"))
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", root / "penguins.csv")
    home = root / ".keizoku"
    train = ["train", "--budget", "60s", "--model", "lightgbm", "--max-trials", "2"]
    for args in (["init", "penguins.csv", "--target", "species", "--name", MODEL], train):
        _check(_run(args, root, home), args)
    # v2 is trained on the same rows: lenient gates let it pass and become the challenger
    spec = root / "keizoku.yaml"
    lenient = "retraining:\n  gates: {min_gain: -1000, max_latency_increase: 1000}\n"
    spec.write_text(spec.read_text() + lenient)  # init writes no retraining: section
    _check(_run(train, root, home), train)
    return root


def _check(out: subprocess.CompletedProcess[str], args: list[str]) -> None:
    if out.returncode != 0:
        raise RuntimeError(f"keizoku {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")


def trained_copy(dest: Path) -> Path:
    """A project folder at ``dest`` (keizoku.yaml, penguins.csv, .keizoku) with peng v1, v2."""
    global _template
    if _template is None:
        _template = _train_template()
    shutil.copytree(_template, dest, dirs_exist_ok=True)
    return dest


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(list(args), root, root / ".keizoku")


def set_gate(version: int, verdict: str) -> None:
    from keizoku.registry.backend import client

    client().set_model_version_tag(MODEL, str(version), "keizoku.gate", verdict)


def frame() -> Any:
    import pandas as pd

    return pd.read_csv(REPO / "examples" / "data" / "penguins.csv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``keizoku serve`` on a free loopback port for a project folder."""

    def __init__(self, root: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KEIZOKU_HOME": str(root / ".keizoku")}
        cmd = [KEIZOKU_EXE, "serve", "--port", str(self.port), "--log-level", "warning", *args]
        self.log = root / f"serve-{self.port}.log"
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=self._fh, stderr=subprocess.STDOUT
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout: float = 120) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()
