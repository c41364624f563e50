"""Helpers shared by tests (importable as ``kzsupport``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real console script, as a user runs it (exit codes are an API: test them here).
REAL_KEIZOKU_EXE = str(Path(sys.executable).with_name("keizoku"))
# Where the tests start `keizoku`. By default a client of the run's fork server
# (tests/forkserver.py), which runs the same console script in a child of a process that
# has already imported the libraries it uses; KEIZOKU_TEST_FORK=0: the real executable.
FORK_ENV = "KEIZOKU_TEST_FORKSERVER"
FORKING = os.environ.get("KEIZOKU_TEST_FORK", "1") != "0"


def _fork_client() -> str:
    from forkserver import client_script

    folder = Path(tempfile.mkdtemp(prefix="keizoku-test-client-"))
    exe = folder / "keizoku"  # the same name: usage lines and argv[0] read "keizoku"
    exe.write_text(client_script(sys.executable, REAL_KEIZOKU_EXE))
    exe.chmod(0o755)
    return str(exe)


KEIZOKU_EXE = _fork_client() if FORKING else REAL_KEIZOKU_EXE
CHROMIUM = Path("/usr/bin/chromium")
# Set by tests/conftest.py in the process that starts the run, inherited by xdist workers.
SHARED_ENV = "KEIZOKU_TEST_SHARED"


def shared_datasets() -> Path:
    """The workplace's shared data sets (absent for users outside it)."""
    env = os.environ.get("KEIZOKU_SHARED_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


# ---------------------------------------------------------------- skip helpers (one place)


def need_shared(relative: str) -> Path:
    """The shared data set at ``relative``, or a skip that says it is absent."""
    path = shared_datasets() / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data sets exist only in the keizoku workplace")
    return path


def need_module(name: str, reason: str) -> None:
    """A skip that says ``reason`` unless the top-level package ``name`` is installed.

    Decided by ``importlib.util.find_spec``, without importing the package (at module level
    too): ``pytest.importorskip`` there imports it in every xdist worker while it collects,
    also in one that never runs the file (torch and sentence_transformers: ~5 s of CPU).
    A test imports the package where it uses it.
    """
    __tracebackhide__ = True  # the skip names the test file, as importorskip's does
    if importlib.util.find_spec(name) is None:
        pytest.skip(reason, allow_module_level=True)


def need_chromium() -> Path:
    """The headless Chromium the page tests drive, or a skip that says how to install it."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"Headless Chromium is not installed at {CHROMIUM} "
            "(install it with: apt-get install -y chromium)"
        )
    return CHROMIUM


CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")  # fmt: skip


@contextlib.contextmanager
def chromium_browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright, for one test file: each test opens a fresh
    context (``browser.new_context()``, ``browser.new_page()``) of its own; starting the
    browser (~0.5 s of CPU) is paid once. Not wider than a file: a live
    ``sync_playwright()`` blocks every other file's in the same worker ("Sync API inside
    the asyncio loop")."""
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


# ------------------------------------------------------------ built once per test run


def built_once(name: str, build: Callable[[Path], None]) -> Path:
    """A folder made by ``build(folder)`` once per test run and shared by every worker.

    The first process to ask builds it while holding a file lock; the others wait and then
    reuse it. Callers copy it (``shutil.copytree``) and never change it: the copies'
    registries point at its artifacts. A failed build leaves nothing, so the next caller
    tries again and sees the same error.
    """
    root = Path(os.environ.get(SHARED_ENV) or _process_shared())
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not (root / f"{name}.built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            (root / f"{name}.built").touch()
    return folder


def relocated_copy(template: Path, dest: Path) -> Path:
    """A copy of ``template`` (a ``built_once`` folder) at ``dest`` that owns its artifacts.

    MLflow's SQLite store records absolute artifact paths: a plain copy's registry still
    points at the template's files. Here every path under ``template`` in each copied
    ``mlflow.db`` is rewritten to the copy's, so a test may change or tamper with its
    copy's artifacts without touching the template or another copy.
    """
    import sqlite3

    shutil.copytree(template, dest, dirs_exist_ok=True)
    old, new = f"{template.resolve()}/", f"{dest.resolve()}/"
    for db in dest.rglob("mlflow.db"):
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                for name in (c[1] for c in columns if "CHAR" in c[2] or "TEXT" in c[2]):
                    conn.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                        f'WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )
    return dest


_shared: list[str] = []


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something true (a refused connection is false);
    fail naming ``what`` after ``timeout``."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except httpx.TransportError:  # not listening yet, or the connection dropped
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)


def copy_live_home(home: Path, dest: Path, *skip: str) -> Path:
    """A copy of ``home`` at ``dest`` made by another process (``skip``: glob patterns).

    ``home`` may be in use by this process: its SQLite connections (the registry, MLflow's
    pool) hold POSIX advisory locks, and closing *any* descriptor of those files in this
    process drops them all (SQLite's "How to corrupt": locks cancelled by close()). A
    ``shutil.copytree`` here once did that, another process then took itself for the last
    connection and reset the WAL: this process read "disk I/O error" and an alias it had
    moved back was lost. A child's descriptors do not touch this process's locks.
    """
    code = (
        "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], "
        "ignore=shutil.ignore_patterns(*sys.argv[3:]))"
    )
    subprocess.run([sys.executable, "-c", code, str(home), str(dest), *skip], check=True)
    return dest


def _process_shared() -> str:
    """Without the run's shared folder (a process not started by pytest): one per process."""
    if not _shared:
        _shared.append(tempfile.mkdtemp(prefix="keizoku-test-shared-"))
    return _shared[0]


# ------------------------------------------------------------------ a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``keizoku serve`` in a subprocess on a free loopback port, run in ``cwd``.

    ``env`` defaults to this process's environment with ``KEIZOKU_HOME`` = ``cwd/.keizoku``;
    ``exe=REAL_KEIZOKU_EXE`` when a test needs ``proc.pid`` to be the server's own pid.
    """

    def __init__(
        self, cwd: Path, *args: str, env: dict[str, str] | None = None, exe: str | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        if env is None:
            env = {**os.environ, "KEIZOKU_HOME": str(cwd / ".keizoku")}
        # the test that starts it, not the one whose fixture made ``env`` (the fork
        # server's log books the server's CPU to this name)
        env = {**env, "PYTEST_CURRENT_TEST": os.environ.get("PYTEST_CURRENT_TEST", "-")}
        cmd = [
            exe or KEIZOKU_EXE,
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *args,
        ]
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self._signalled = False
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=self._fh, stderr=subprocess.STDOUT
        )
        import httpx

        self.client = httpx.Client(base_url=self.url, timeout=30)

    # How often wait_ready looks: whether the port listens (a refused connect costs next
    # to nothing), then asks the probe, from POLL_S up to POLL_MAX_S apart (a server that
    # listens without being ready yet is not asked 50 times a second for long).
    POLL_S = 0.01
    POLL_MAX_S = 0.2

    def wait_ready(self, timeout: float = 120, probe: str = "/readyz") -> Server:
        """Until ``probe`` answers 200 (``/healthz`` for a server with nothing to serve yet)."""
        import httpx

        deadline = time.monotonic() + timeout
        pause = self.POLL_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output()}")
            if self._listens():
                with contextlib.suppress(httpx.HTTPError):
                    if self.client.get(probe).status_code == 200:
                        return self
                time.sleep(pause)
                pause = min(pause * 1.5, self.POLL_MAX_S)
            else:
                time.sleep(self.POLL_S)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.output()}")

    def _listens(self) -> bool:
        """True once something accepts connections on the port."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text()

    def signal_stop(self) -> None:
        """SIGTERM, once, without waiting (``stop`` then waits)."""
        if not self._signalled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self._signalled = True

    def stop(self) -> int:
        """SIGTERM (unless ``signal_stop`` sent it), then SIGKILL after 30 s; the exit status."""
        self.client.close()
        if self.proc.poll() is None:
            self.signal_stop()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()
        return int(self.proc.returncode)

    @staticmethod
    def stop_all(servers: Iterable[Server | None]) -> list[int]:
        """Stop ``servers`` (None: never started) together: every one is signalled before
        the first is waited for; their exit statuses, in order."""
        started = [s for s in servers if s is not None]
        for server in started:
            server.signal_stop()
        return [server.stop() for server in started]


def json_records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: Python scalars, ``None`` for missing values."""
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def text(self) -> str:
        """stdout + stderr with table borders dropped and whitespace collapsed (rich wraps)."""
        raw = (self.out + "\n" + self.err).translate(_BORDERS)
        return " ".join(raw.split())


_BORDERS = str.maketrans({ch: " " for ch in "│┃┏┓┗┛━┳┻╇┡┩└┘┴┬─╭╮╰╯┼┠┨┯┷╋║═╔╗╚╝"})


def log_prediction(
    log: Any,
    *,
    request_id: str,
    ts: float,
    model: str,
    version: int,
    variant: str,
    inputs: dict[str, Any],
    prediction: Any,
    latency_ms: float = 1.0,
    shadow: bool = False,
    entity_id: Any = None,
) -> None:
    """Append one prediction to a real ``PredictionLog`` as the server does (a class label)."""
    from keizoku.prediction import Prediction

    probs = {str(prediction): 1.0}  # a classifier sure of its label
    pred = Prediction(prediction, probs, None, version, variant, request_id, entity_id)
    log.append(pred, ts=ts, model=model, inputs=inputs, latency_ms=latency_ms, shadow=shadow)
