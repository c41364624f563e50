"""CPU and imports of each ``keizoku`` command's start-up (decision 0008, fourth pass).

``PYTHONPATH=src python bench/startup.py [OUT.json]`` runs, in a fresh home on the shipped
penguins table: ``--help``, ``--version``, ``init``, ``train --max-trials 1`` (twice: the
second registers version 2), ``models``, ``status``, ``predict``, ``promote --force`` and
``serve`` until ``/readyz`` answers. For each it prints the exit code, the command's CPU
(user + system, from ``getrusage`` of the waited child; for ``serve`` from ``/proc`` once
ready), wall seconds, the seconds ``-X importtime`` counts in imports (wall clock: load
inflates it) and which heavy packages the process imported. CPU, unlike wall time,
survives a loaded machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("keizoku"))
HEAVY = ("mlflow", "sklearn", "pandas", "torch", "duckdb", "lightgbm", "xgboost",
         "fastapi", "sqlalchemy", "alembic", "pyarrow", "scipy")  # fmt: skip
CLK = os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _imports(stderr: str) -> tuple[float, list[str]]:
    """Seconds in top-level imports and the heavy packages among them (``-X importtime``)."""
    total, heavy = 0.0, set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line[12:].split("|")
        root = raw.strip().split(".")[0]
        if root in HEAVY:
            heavy.add(root)
        if not raw[1:].startswith(" "):  # a top-level import (nested ones are indented)
            total += int(cumulative) / 1e6
    return total, sorted(heavy)


def _run(args: list[str], cwd: Path, env: dict[str, str], trace: bool) -> dict[str, Any]:
    if trace:
        env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    before, start = _children_cpu(), time.monotonic()
    proc = subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if trace:
        return dict(zip(("import_s", "heavy"), _imports(proc.stderr), strict=True))
    row = {"rc": proc.returncode, "cpu": _children_cpu() - before,
           "wall": time.monotonic() - start}  # fmt: skip
    if proc.returncode != 0:
        row["stderr"] = proc.stderr.strip().splitlines()[-1:]
    return row


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(cwd: Path, env: dict[str, str], trace: bool) -> dict[str, Any]:
    port = _free_port()
    env = {**env, "PYTHONPROFILEIMPORTTIME": "1"} if trace else env
    start = time.monotonic()
    log = cwd / "serve.err"
    with log.open("w") as stderr:  # a file: a pipe nobody reads would block the server
        proc = subprocess.Popen([EXE, "serve", "--port", str(port)], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    row: dict[str, Any] = {}
    try:
        while time.monotonic() - start < 300:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        row = {"rc": 0, "cpu": (int(fields[11]) + int(fields[12])) / CLK,
               "wall": time.monotonic() - start}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if trace:
        return dict(zip(("import_s", "heavy"), _imports(log.read_text()), strict=True))
    return row


def _sequence(trace: bool) -> dict[str, dict[str, Any]]:
    """The commands in order, in a fresh home (traced runs get a home of their own)."""
    work = Path(tempfile.mkdtemp(prefix="keizoku-startup-"))
    env = {**os.environ, "KEIZOKU_HOME": str(work / ".keizoku"), "COLUMNS": "120"}
    shutil.copy(REPO / "examples/data/penguins.csv", work / "penguins.csv")
    train = ["train", "--max-trials", "1", "--budget", "120s"]
    steps = {
        "--help": ["--help"],
        "--version": ["--version"],
        "init": ["init", "penguins.csv", "--target", "species", "--name", "peng"],
        "train (v1)": train,
        "train (v2)": train,
        "models": ["models"],
        "status": ["status", "peng"],
        "predict": ["predict", "penguins.csv", "-m", "peng", "-o", "out.csv"],
        "promote": ["promote", "peng", "2", "--force", "--reason", "bench"],
    }
    rows: dict[str, dict[str, Any]] = {}
    try:
        for label, args in steps.items():
            rows[label] = _run(args, work, env, trace)
            print(label, json.dumps(rows[label]), flush=True)
        rows["serve → /readyz"] = _serve(work, env, trace)
        print("serve", json.dumps(rows["serve → /readyz"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    rows = _sequence(trace=False)
    for label, traced in _sequence(trace=True).items():
        rows[label].update(traced)
    print("\n| command | rc | CPU s | wall s | imports s | heavy packages imported |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, r in rows.items():
        print(f"| `{label}` | {r['rc']} | {r['cpu']:.2f} | {r['wall']:.2f} | "
              f"{r['import_s']:.2f} | {', '.join(r['heavy']) or '—'} |")  # fmt: skip
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
