"""Fixtures for the serving tests: one trained home per session, real servers on loopback.

One small mixed-type data set is trained twice (version 1 = champion, version 2 =
challenger) once per test run (``kzsupport.built_once``); each process that runs a serving
file gets its own copy of that home (``kzsupport.relocated_copy``: its registry points at
its own artifacts). Tests that move aliases, write deployment files, create keys or tamper
with artifacts put things back when they finish; under xdist no other process sees them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kzsupport import KEIZOKU_EXE, Server, built_once, relocated_copy

MODEL = "clinic"
WORDS = "patient reports mild severe pain fatigue cough fever stable improving follow up".split()


def _dataset(path: Path) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    raw = data.frame
    rng = np.random.default_rng(0)
    n = len(raw)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "radius": raw["mean radius"].round(3),
            "texture": raw["mean texture"].round(3),
            "smoothness": raw["mean smoothness"].round(5),
            "grade": pd.cut(raw["mean area"], [0, 450, 800, 1e9], labels=["low", "mid", "high"])
            .astype(str)
            .where(rng.random(n) > 0.1, "mid"),
            "site": rng.integers(1, 5, n),
            "note": [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(n)],
            "malignant": 1 - data.target,
        }
    )
    frame.loc[rng.random(n) < 0.05, "texture"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    out = subprocess.run([KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"keizoku {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")


def _train(root: Path) -> None:
    """The template: ``clinic`` v1 (champion) and v2 (challenger) in ``root/.keizoku``."""
    _dataset(root / "clinic.csv")
    env = {**os.environ, "KEIZOKU_HOME": str(root / ".keizoku"), "PYTHONUNBUFFERED": "1"}
    _run(["init", "clinic.csv", "--target", "malignant", "--name", MODEL], root, env)
    spec = root / "keizoku.yaml"  # v2, trained on the same rows, must pass its gates
    lenient = "retraining:\n  gates: {min_gain: -1000, max_latency_increase: 1000}\n"
    spec.write_text(spec.read_text() + lenient)  # init writes no retraining: section
    for _ in range(2):
        try:
            _run(["train", "--budget", "60s", "--preset", "fast", "--max-trials", "4"], root, env)
        except RuntimeError:  # a loaded machine can leave no trial finished: once more, longer
            _run(["train", "--budget", "60s", "--preset", "fast", "--max-trials", "6"], root, env)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A home with model ``clinic`` v1 (champion) and v2 (challenger), this process's own.

    Each serving test that uses it runs with ``KEIZOKU_HOME`` set to it (``_serving_home``);
    the tests after them in the same process do not see it.
    """
    root = relocated_copy(built_once("serving-clinic", _train), tmp_path_factory.mktemp("serving"))
    home = root / ".keizoku"
    frame = _dataset(root / "clinic.csv")  # the same rows again (seeded), as a frame
    env = {**os.environ, "KEIZOKU_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return {"root": root, "home": home, "env": env, "frame": frame, "csv": root / "clinic.csv"}


@pytest.fixture(autouse=True)
def _serving_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process calls (keys, RAG collections, the registry) use the trained home."""
    if "trained" in request.fixturenames:
        home = request.getfixturevalue("trained")["home"]
        monkeypatch.setenv("KEIZOKU_HOME", str(home))


@pytest.fixture(scope="session")
def server(trained: dict[str, object]) -> Iterator[Server]:
    """The default server: no keys, loopback, fast registry polling."""
    srv = Server(trained["root"], "--poll-interval", "0.3", env=trained["env"])  # type: ignore[arg-type]
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture
def make_server(trained: dict[str, object]) -> Iterator[Callable[..., Server]]:
    """Start extra servers (``make_server(*serve_args)``); each is stopped after the test."""
    started: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Server:
        """``env`` replaces the session's environment (e.g. another KEIZOKU_HOME)."""
        srv = Server(trained["root"], *args, env=env or trained["env"])  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield make
    Server.stop_all(started)
