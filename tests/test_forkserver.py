"""The test fork server (tests/forkserver.py) behaves as the real executable does.

Most tests start ``keizoku`` through it (``kzsupport.KEIZOKU_EXE``); these tests hold it
to what a caller of the real executable sees: the same stdout, stderr and exit code,
signals that reach the command, a command that dies with its caller, and the real
executable whenever the interpreter's start-up environment differs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kzsupport import FORK_ENV, KEIZOKU_EXE, REAL_KEIZOKU_EXE, REPO, Server
from store_outage_support import until

pytestmark = pytest.mark.skipif(
    KEIZOKU_EXE == REAL_KEIZOKU_EXE, reason="KEIZOKU_TEST_FORK=0: no fork server in this run"
)
PENGUINS = REPO / "examples" / "data" / "penguins.csv"


def _server_ready() -> None:
    """The fork server listens (it starts in the background with the test run)."""
    until(lambda: Path(os.environ[FORK_ENV]).exists(), 120, "the fork server's socket")


def _run(exe: str, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(home), **extra}
    return subprocess.run([exe, *args], cwd=home.parent, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["trian"],  # a usage error: exit 2
        ["models"],  # an empty registry
        ["promote", "penguins", "1", "--to", "champion"],  # a KeizokuError: its own code
        ["init", "missing.csv", "--target", "y"],
    ],
)
def test_a_command_prints_and_exits_as_the_real_executable(
    keizoku_home: Path, args: list[str]
) -> None:
    _server_ready()
    forked = _run(KEIZOKU_EXE, keizoku_home, *args)
    real = _run(REAL_KEIZOKU_EXE, keizoku_home, *args)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )


def test_the_command_runs_in_the_callers_folder_environment_and_umask(
    keizoku_home: Path,
) -> None:
    _server_ready()
    project = keizoku_home.parent / "project"
    project.mkdir()
    (project / "penguins.csv").write_bytes(PENGUINS.read_bytes())
    env = {**os.environ, "KEIZOKU_HOME": str(keizoku_home)}
    done = subprocess.run(
        ["sh", "-c", f"umask 077 && exec {KEIZOKU_EXE} init penguins.csv --target species"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = project / "keizoku.yaml"
    assert "species" in spec.read_text()
    assert spec.stat().st_mode & 0o077 == 0  # the caller's umask, not the server's


def test_a_different_start_up_environment_runs_the_real_executable(keizoku_home: Path) -> None:
    """PYTHONPROFILEIMPORTTIME is read when an interpreter starts: only a new one lists imports."""
    _server_ready()
    done = _run(KEIZOKU_EXE, keizoku_home, "--version", PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    assert "import time:" in done.stderr and "keizoku.cli" in done.stderr


def _server_pid(home: Path) -> int:
    """The serving process's own pid, from the heartbeat it writes (servers/HOST-PID.json)."""
    beat = until(lambda: next((home / "servers").glob("*.json"), None), 60, "a heartbeat")
    return int(json.loads(beat.read_text())["pid"])


def _gone(pid: int) -> bool:
    """``pid`` has ended: no such process, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_sigterm_reaches_the_command_and_its_exit_status_comes_back(tmp_path: Path) -> None:
    _server_ready()
    real = Server(tmp_path, exe=REAL_KEIZOKU_EXE).wait_ready(probe="/healthz")
    real_code = real.stop()
    forked = Server(tmp_path, exe=KEIZOKU_EXE).wait_ready(probe="/healthz")
    child = _server_pid(tmp_path / ".keizoku")
    assert child != forked.proc.pid  # the command runs in the server's child
    assert forked.stop() == real_code  # SIGTERM forwarded: the same graceful stop
    assert "Traceback" not in forked.output()


def test_a_command_whose_caller_is_killed_is_killed_too(tmp_path: Path) -> None:
    _server_ready()
    forked = Server(tmp_path, exe=KEIZOKU_EXE).wait_ready(probe="/healthz")
    child = _server_pid(tmp_path / ".keizoku")
    forked.proc.send_signal(signal.SIGKILL)
    assert forked.proc.wait(30) == -signal.SIGKILL
    until(lambda: _gone(child), 30, f"the end of pid {child}, whose caller was killed")
    forked.stop()
