"""A trained penguins home for the rollout tests, built once per test run and copied.

``trained_copy(dest)`` gives a fresh ``KEIZOKU_HOME`` at ``dest`` holding model ``peng``:
version 1 (champion) and version 2 (challenger: it passed lenient gates), trained by the
real ``keizoku train`` on examples/data/penguins.csv with two trials each. The template is
trained once for the whole run, whichever xdist worker asks first (``kzsupport.built_once``);
each caller gets its own copy of the registry database (the artifacts it points at are
read-only), so tests cannot see each other's deployments or logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kzsupport import KEIZOKU_EXE, REPO, Server, built_once, free_port

__all__ = [
    "MODEL",
    "Server",
    "cli",
    "frame",
    "free_port",
    "set_gate",
    "trained_copy",
    "trained_project",
]

MODEL = "peng"


def _run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEIZOKU_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _train_template(root: Path) -> None:
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", root / "penguins.csv")
    home = root / ".keizoku"
    train = ["train", "--budget", "60s", "--family", "lightgbm", "--max-trials", "2"]
    for args in (["init", "penguins.csv", "--target", "species", "--name", MODEL], train):
        _check(_run(args, root, home), args)
    # v2 is trained on the same rows: lenient gates let it pass and become the challenger
    spec = root / "keizoku.yaml"
    lenient = "retraining:\n  gates: {min_gain: -1000, max_latency_increase: 1000}\n"
    spec.write_text(spec.read_text() + lenient)  # init writes no retraining: section
    _check(_run(train, root, home), train)


def _check(out: subprocess.CompletedProcess[str], args: list[str]) -> None:
    if out.returncode != 0:
        raise RuntimeError(f"keizoku {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")


def trained_copy(dest: Path) -> Path:
    """A project folder at ``dest`` (keizoku.yaml, penguins.csv, .keizoku) with peng v1, v2."""
    shutil.copytree(built_once("rollout-peng", _train_template), dest, dirs_exist_ok=True)
    return dest


@contextmanager
def trained_project(dest: Path, spec: str = "") -> Iterator[Path]:
    """``trained_copy(dest)``, with ``spec`` appended to its keizoku.yaml, and
    ``KEIZOKU_HOME`` pointing at its home until the block ends (then restored)."""
    root = trained_copy(dest)
    if spec:
        with open(root / "keizoku.yaml", "a") as fh:
            fh.write(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(root / ".keizoku"))
        yield root


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(list(args), root, root / ".keizoku")


def set_gate(version: int, verdict: str) -> None:
    from keizoku.registry.backend import client

    client().set_model_version_tag(MODEL, str(version), "keizoku.gate", verdict)


def frame() -> Any:
    import pandas as pd

    return pd.read_csv(REPO / "examples" / "data" / "penguins.csv")
