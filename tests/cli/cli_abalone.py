"""A headerless abalone-like project, trained once per test run (issue 12's headerless flow).

The real abalone file is not shipped, so this writes one of the same shape: nine columns,
no header row, the target ``rings`` last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from kzsupport import KEIZOKU_EXE, CliResult, built_once

NAMES = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight",
         "viscera_weight", "shell_weight", "rings"]  # fmt: skip


def write_abalone(path: Path, rows: int = 400, seed: int = 0, target: bool = True) -> Path:
    """A headerless CSV shaped like abalone.data (``M,0.455,0.365,…,15``)."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.1, 0.8, rows)
    weight = length**2 * 2 + rng.normal(0, 0.03, rows)
    rings = np.clip(np.round(4 + length * 16 + rng.normal(0, 1.5, rows)), 1, 29).astype(int)
    lines = []
    for i in range(rows):
        sex = "MFI"[i % 3]
        values = [length[i], length[i] * 0.8, length[i] * 0.25, weight[i], weight[i] * 0.45,
                  weight[i] * 0.2, weight[i] * 0.3]  # fmt: skip
        fields = [sex, *(f"{v:.4f}" for v in values)] + ([str(rings[i])] if target else [])
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(cwd: Path, *args: str, home: Path | None = None, columns: int = 200) -> CliResult:
    """``keizoku ARGS`` in ``cwd``; ``KEIZOKU_HOME`` unset unless ``home`` (found like git)."""
    env = {k: v for k, v in os.environ.items() if k != "KEIZOKU_HOME"}
    env["COLUMNS"] = str(columns)
    if home is not None:
        env["KEIZOKU_HOME"] = str(home)
    proc = subprocess.run(
        [KEIZOKU_EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    return CliResult(proc)


def _build(folder: Path) -> None:
    write_abalone(folder / "abalone.csv")
    done = run(folder, "init", "abalone.csv", "--no-header", "--names", ",".join(NAMES),
               "-t", "rings", "--task", "regression")  # fmt: skip
    assert done.code == 0, done.text
    done = run(folder, "train", "--budget", "60s", "--max-trials", "2")
    assert done.code == 0, done.text


def trained_abalone(dest: Path) -> Path:
    """A copy of the trained headerless project at ``dest`` (its home is ``dest/.keizoku``)."""
    shutil.copytree(built_once("cli-abalone-headerless", _build), dest)
    return dest
