"""Shared test seams: a fresh KEIZOKU_HOME, the CLI as a user runs it, the xdist order."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kzsupport import FORK_ENV, FORKING, KEIZOKU_EXE, SHARED_ENV, CliResult
from pgsupport import stop_run_server

# make test runs the suite with xdist's --dist loadfile: each file's tests run in one worker
# (module fixtures, and tests that build on the previous one, stay whole); a session
# fixture (the serving home, the evaluation models) is built once in each worker that
# needs it, and each worker has its own KEIZOKU_HOME.
# The longest files (measured: docs/decisions/0008-fast-tests.md) start first, so that
# none of them starts last and leaves the other workers idle. Only an order: a file
# missing here still runs, after these.
LONG_FIRST = (
    "distributed/test_ray.py",
    # the second worker's first file runs no `keizoku` command: it uses the CPU while the
    # fork server is still importing (a first command waits for it, ~6-8 s, s14)
    "conformance/test_model_families.py",
    "conformance/test_store_cli.py",
    "conformance/test_scaleout.py",
    "text/test_text_embed_loop.py",
    "serving/test_boundary.py",
    "e2e/test_loop.py",
    "lifecycle/test_gates_before_traffic.py",
    "test_readme.py",
    "lifecycle/test_experiments.py",
    "lifecycle/test_canary.py",
    "test_shared_datasets.py",
    "cli/test_cli_store.py",
    "lifecycle/test_state_machine.py",
    "test_cli_workflow.py",
    "serving/test_server.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # Nothing a test does may touch the developer's ./.keizoku; each xdist worker runs
    # this too and gets a home of its own.
    home = tempfile.mkdtemp(prefix="keizoku-test-home-")
    os.environ["KEIZOKU_HOME"] = home
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the process that starts the run
        # One OpenMP/BLAS thread per process (torch, HistGradientBoosting, NumPy's BLAS),
        # inherited by the workers and every keizoku they start: make test already keeps
        # both cores busy with two workers, and a second thread per process then spins
        # against the other worker (a 24-image CNN fit: 10.8 s with two threads, 4.0 s with
        # one, on the quiet 2-core machine; decision 0008, s10). Set it to override.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        shared = tempfile.mkdtemp(prefix="keizoku-test-shared-")
        os.environ[SHARED_ENV] = shared  # inherited by the workers (kzsupport.built_once)
        config.add_cleanup(lambda: shutil.rmtree(shared, ignore_errors=True))
        # The run's PostgreSQL server, if a worker started one (pgsupport.postgres): one
        # for every worker, each test with databases of its own; stopped before the
        # folder that names it goes (cleanups run last added, first).
        config.add_cleanup(lambda: stop_run_server(Path(shared)))
        # The migrated empty registry store (keizoku.registry.seed): one per run, shared by
        # its workers (written atomically), never the developer's ~/.cache/keizoku.
        cache = tempfile.mkdtemp(prefix="keizoku-test-cache-")
        os.environ["KEIZOKU_CACHE_DIR"] = cache
        config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    if FORKING and "PYTEST_XDIST_WORKER" not in os.environ:
        _start_fork_server(config)


def _start_fork_server(config: pytest.Config) -> None:
    """The run's fork server (tests/forkserver.py), started in the background by the
    process that starts the run; its xdist workers inherit its socket (``FORK_ENV``).

    One server for every worker: each command carries its own environment, folder, umask
    and standard streams, and the server keeps nothing from one command to the next, so
    the workers stay apart as they did with a server each, and the run imports and holds
    the libraries once (decision 0008, s14).
    Until it has imported its libraries and listens, ``keizoku`` waits for it (at most
    ``forkserver.WARMING_WAIT_S``), then runs the real executable.
    It exits when this process does (its stdin closes). With ``KEIZOKU_TEST_FORK_LOG=PATH``
    the server logs each command (its pid, exit status, CPU seconds and the test that ran
    it) to ``PATH.server.main``, and each client that ran the real executable says why in
    PATH.
    """
    folder = Path(tempfile.mkdtemp(prefix="keizoku-test-fork-"))
    socket_path = folder / "socket"
    trace = os.environ.get("KEIZOKU_TEST_FORK_LOG")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log_path = Path(f"{trace}.server.{worker}") if trace else folder / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in the cleanup
    Path(f"{socket_path}.warming").touch()  # clients wait for the server while it exists
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("forkserver.py")), str(socket_path)],
        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    os.environ[FORK_ENV] = str(socket_path)

    def stop() -> None:
        os.environ.pop(FORK_ENV, None)
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(stop)


def _file(item: pytest.Item) -> str:
    tests = Path(__file__).resolve().parent
    path = Path(item.path).resolve()
    return path.relative_to(tests).as_posix() if path.is_relative_to(tests) else str(path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, the longest files first (the order inside a file is kept)."""
    if not hasattr(config, "workerinput"):
        return  # one process: the collection order is kept
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(_file(item), len(LONG_FIRST)))  # a stable sort


@pytest.fixture
def keizoku_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".keizoku"
    monkeypatch.setenv("KEIZOKU_HOME", str(home))
    return home


@pytest.fixture
def cli(tmp_path: Path, keizoku_home: Path):  # type: ignore[no-untyped-def]
    """Run ``keizoku ARGS`` in a subprocess, in ``tmp_path``, as a user would."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
        env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(keizoku_home)}
        proc = subprocess.run(
            [KEIZOKU_EXE, *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc)

    return run
