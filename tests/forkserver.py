"""A pre-imported process that forks one child per ``keizoku`` command the tests run.

Most of what a small ``keizoku`` command costs is importing the libraries it uses
(scikit-learn, MLflow and its SQLAlchemy store, FastAPI): ~2.4 s of a 3.7 s ``train``
(decision 0008, s12). The suite starts about 600 commands. This server imports those
libraries once per test run (one server for all the xdist workers, started by the
process that starts the run); each command is then a ``fork()`` of it that runs the
real console script (``.venv/bin/keizoku``, by ``runpy``) with the command's own
arguments, working folder, environment, umask and standard streams. keizoku's library
modules are imported too (none reads the environment, the folder or the clock when it
is imported, and none starts a thread); ``keizoku.cli`` too, since its consoles read the
terminal's width and colours when first used, not when imported (s16; before, each child
imported the CLI afresh: ~15-20 ms a command).

The test holds a small client process (``client_script``) in place of the executable:
it passes its stdin/stdout/stderr to the server, forwards the signals it receives to the
child, and exits as the child did (the same code, or killed by the same signal). If the
client dies (a test's timeout kills it), the server kills the child. Anything the server
cannot reproduce falls back to ``exec`` of the real executable: no server, a different
interpreter start-up environment (``PYTHON*``, locale, thread counts, ``LD_*``), or a
server that is not ready yet.

What is not exercised through here, and so is tested through the real executable
(``kzsupport.REAL_KEIZOKU_EXE``): the interpreter's start, the console script's imports
of third-party libraries in a fresh process (``tests/test_imports.py``), exit codes and
signals end to end (``tests/cli/test_cli_exit_codes.py``, ``test_cli_signals.py``), and
the store lock's open files (``tests/cli/test_cli_store.py``). The README's quick start
and the tests that need a server's pid run through here (a server's pid is read from its
heartbeat, s14).
``KEIZOKU_TEST_FORK=0 make test`` runs every command through the real executable.

Run as ``python forkserver.py SOCKET``; it exits when its stdin closes (the pytest run
that started it ended).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import gc
import importlib
import io
import marshal
import os
import random
import resource
import runpy
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from typing import Any

# Environment variables read when the interpreter or a native library starts: a command
# that sets one differently from the server's own start gets the real executable.
START_PREFIXES = ("PYTHON", "LD_", "LC_", "MALLOC_")
# (TZ: the time module reads it when it is imported.)
START_NAMES = ("LANG", "LANGUAGE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
               "KMP_AFFINITY", "OMP_PROC_BIND", "TZ")  # fmt: skip

# Third-party modules imported once, besides those keizoku's own modules import
# (``keizoku_modules``: every one but the Ray/onnxruntime ones).
WARM = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "lightgbm",
    "xgboost",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "optuna",
    "uvicorn",
    "uvicorn.main",
    "uvicorn.loops.uvloop",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.httptools_impl",
    "httpx",
    "pyarrow.pandas_compat",
    "narwhals._pandas_like.namespace",
    "mlflow.tracing.export",
    "opentelemetry.sdk.metrics",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "sklearn.calibration",
    "git",
    "IPython",
    # what rich and typer import to print help and tracebacks (markdown_it and attrs among
    # them: ~100 modules a `--help` child imported): none reads the environment on import
    "rich.markdown",
    "rich.pretty",
    "rich.traceback",
    "rich.columns",
    "rich.panel",
    "rich.rule",
    "rich._emoji_codes",
    "typer._adapters",
    "typer._click.decorators",
    "torch",  # imported without starting a thread (its pools start on first use)
    "sentence_transformers",  # ~3 s of imports in each command that embeds text
    "shap",  # its TreeExplainer for HistGradientBoosting and forests: numba, matplotlib
    # ~80 ms in each command that reads the log (monitor) and each server that folds a
    # logged segment (its threads start when a database is opened, not on import), and
    # what reading the log imports besides (pyarrow's datasets: ~20 ms)
    "duckdb",
    "pyarrow.dataset",
    "pyarrow.vendored.version",
    # what `serve` imports when uvicorn starts (its "auto" loop, HTTP and WebSocket
    # protocols, anyio's asyncio backend; ~30 ms a server) and the docs' static files
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "anyio._backends._asyncio",
    "fastapi.staticfiles",
)
# Per-process caches filled once by a call (module, function): scikit-learn's check of a
# DataFrame's column names asks narwhals, which reads every installed package's entry
# points once (~10 ms in each command that predicts, monitors or trains).
WARM_CALLS = (("narwhals.plugins", "_discover_entrypoints"),)
# Never pre-imported: they start threads or hold devices, and few commands use them.
COLD = ("ray", "tensorflow", "onnxruntime")
KEIZOKU_COLD = ("__main__", "distributed", "export.runner")


# Read at run time, not at start: Ray sets PYTHONBREAKPOINT in a process that calls ray.init.
RUN_TIME = ("PYTHONBREAKPOINT",)


def start_env(env: dict[str, str]) -> dict[str, str]:
    """The part of an environment that a process reads when it starts."""
    return {
        k: v
        for k, v in env.items()
        if (k.startswith(START_PREFIXES) or k in START_NAMES) and k not in RUN_TIME
    }


def keizoku_modules() -> list[str]:
    import pkgutil

    import keizoku

    return [
        m.name
        for m in pkgutil.walk_packages(keizoku.__path__, "keizoku.")
        if not any(part in m.name for part in KEIZOKU_COLD)
    ]


def warm() -> list[str]:
    """Import ``WARM`` and ``keizoku_modules()``, call ``WARM_CALLS``; the warnings raised on
    the way (a child would not raise them again).

    Every warning is recorded with the "always" action, which leaves no module's
    once-only registry marked: a child warns as a new process would.
    """
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        for name in WARM:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        for name in keizoku_modules():
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        for name, function in WARM_CALLS:
            with contextlib.suppress(Exception):
                getattr(importlib.import_module(name), function)()
    if _consoles_made():  # they read the terminal when made: each child imports its own
        for name in [n for n in sys.modules if n == "keizoku.cli" or n.startswith("keizoku.cli.")]:
            del sys.modules[name]
    gc.collect()
    gc.freeze()  # fewer pages copied on write in each child
    return [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in raised]


def _consoles_made() -> bool:
    """Whether the CLI's consoles (``keizoku.cli._io``) exist already: a console reads the
    terminal and the environment when it is made, which must happen in each command. They
    are made when first used (s16); if an import ever printed, the server drops the CLI."""
    io_module = sys.modules.get("keizoku.cli._io")
    consoles = [getattr(io_module, name, None) for name in ("console", "err")]
    return any(c is not None and "_lazy_options" not in vars(c) for c in consoles)


# A file's timestamp comes from a clock that ticks every few milliseconds: a folder changed
# in the tick that an import listed it keeps the mtime the import recorded.
MTIME_SLACK_S = 1.0


def settle_finders(since: float) -> int:
    """Once, after the imports: what ``importlib.invalidate_caches()`` did in each child,
    for the folders where it can matter; how many folders' listings were dropped.

    A path finder (``FileFinder``) keeps a folder's listing with the folder's mtime and
    lists it again when the mtime differs, so a file added after the server's imports
    is found without help, except in a folder that changed in the same clock tick as
    the server listed it: only one whose mtime falls after ``since`` (the server's start)
    could have. Those listings are dropped here, as are the cached misses (folders that
    did not exist); each child then lists those folders again on first use. Invalidating
    every finder in each child wrote to ~820 of them: ~1,900 pages copied, ~9 ms a command.
    """
    from importlib.machinery import FileFinder

    dropped = 0
    for name, finder in list(sys.path_importer_cache.items()):
        if finder is None or not os.path.isabs(name):
            del sys.path_importer_cache[name]
        elif isinstance(finder, FileFinder):
            recorded = getattr(finder, "_path_mtime", -1)
            if recorded == -1 or recorded >= since - MTIME_SLACK_S:
                finder.invalidate_caches()
                dropped += 1
    return dropped


def fresh_imports() -> None:
    """In a child: what ``importlib.invalidate_caches()`` does that :func:`settle_finders`
    did not do once for all (the other finders' caches, the namespace packages' paths)."""
    from importlib import _bootstrap_external
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "invalidate_caches"):
            finder.invalidate_caches()
    _bootstrap_external._NamespacePath._epoch += 1  # type: ignore[attr-defined]


def keep_finalizers() -> int:
    """Finalizers registered while importing stay the server's: no child runs them at its
    exit (``finalize.atexit``); how many were set to run there.

    They free what the imports built (torch's 176 operator libraries, numba's compiled
    dispatchers): running them in each child copied ~35 MB of the server's pages and
    took ~30 ms of CPU per command, for nothing a caller sees (decision 0008, s14). What
    a command registers itself still runs when it ends.
    """
    registry: dict[weakref.finalize[Any, Any], Any] = getattr(weakref.finalize, "_registry", {})
    kept = [f for f in list(registry) if f.atexit]
    for finalizer in kept:
        finalizer.atexit = False
    return len(kept)


# madvise(2) advice (Linux): back a range with 2 MiB pages, and collapse it into them now.
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
HUGE = 2 << 20


def _anonymous_ranges() -> list[tuple[int, int]]:
    """This process's private writable memory (the heap, pymalloc's arenas, the native
    libraries' allocations), each range cut to whole huge pages."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1] != "rw-p" or fields[5:] not in ([], ["[heap]"]):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            start, end = -(-start // HUGE) * HUGE, end // HUGE * HUGE
            if end - start >= HUGE:
                ranges.append((start, end - start))
    return ranges


def collapse() -> str:
    """Move the warm heap into huge pages (``MADV_COLLAPSE``); what it did, in words.

    Each fork copies the page tables of ~500 MB of imports and each child's exit frees
    them: with 2 MiB pages there are 512 times fewer entries to copy and free (decision
    0008, s14). Best effort: a kernel without the advice, or with transparent huge pages
    off, leaves the memory as it was and the server serves the same.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError) as err:
        return f"no madvise ({err})"
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start, size in _anonymous_ranges():
        madvise(start, size, MADV_HUGEPAGE)
        madvise(start, size, MADV_COLLAPSE)  # a range it refuses in part keeps the rest
    kib = _memory_kib()
    return (
        f"{kib.get('AnonHugePages', 0) >> 10} MiB of {kib.get('Anonymous', 0) >> 10} MiB"
        " anonymous memory in huge pages"
    )


def _memory_kib() -> dict[str, int]:
    """This process's memory totals (``/proc/self/smaps_rollup``), in KiB."""
    totals = {}
    with contextlib.suppress(OSError), open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            fields = line.split()
            if len(fields) == 3 and fields[2] == "kB":
                totals[fields[0].rstrip(":")] = int(fields[1])
    return totals


# Threads that are safe across fork(): pyarrow's jemalloc takes its own locks around it
# (pthread_atfork) and starts its background thread again in the child when needed.
FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def threads() -> int:
    """This process's threads, besides the fork-safe ones (1: only the main thread)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as fh:
            names.append(fh.read().strip())
    return sum(1 for name in names if name not in FORK_SAFE_THREADS)


# -------------------------------------------------------------------------- the server


def recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    fds = array.array("i")
    head, ancillary, _, _ = conn.recvmsg(8, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    (size,) = struct.unpack("!Q", head)
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("client went away")
        body += chunk
    return marshal.loads(body), list(fds)  # the client's own built-in encoding


class Server:
    def __init__(self, path: str) -> None:
        self.env = start_env(dict(os.environ))
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path + ".tmp")
        self.listener.listen(64)
        os.rename(path + ".tmp", path)  # a client sees the socket only once it listens
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.sel.register(sys.stdin, selectors.EVENT_READ, ("parent", None))
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (conn, pidfd)
        self.served = 0

    def serve(self) -> None:
        while True:
            for key, _ in self.sel.select():
                what, arg = key.data
                if what == "accept":
                    self.accept()
                elif what == "parent":
                    if not os.read(sys.stdin.fileno(), 4096):
                        self.shutdown()
                        return
                elif what == "exited":
                    self.reap(arg)
                elif what == "client":
                    self.client_event(arg)

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            request, fds = recv_request(conn)
        except (OSError, ValueError, EOFError, TypeError, ConnectionError, struct.error):
            conn.close()
            return
        differs = sorted(set(start_env(request["env"]).items()) ^ set(self.env.items()))
        if len(fds) != 3 or differs or threads() != 1:
            why = f"start-up environment {differs}, {threads()} threads"
            print(f"forkserver: real executable for {request.get('args')}: {why}",
                  file=sys.stderr, flush=True)  # fmt: skip
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                conn.sendall(b"F\n")  # the client runs the real executable
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self.child(request, fds, conn)  # never returns
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (conn, pidfd)
        self.served += 1
        self.sel.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.sel.register(conn, selectors.EVENT_READ, ("client", pid))
        test = request["env"].get("PYTEST_CURRENT_TEST", "-").split(" ")[0]
        print(f"forkserver: pid {pid} runs {request['args']} for {test}", file=sys.stderr,
              flush=True)  # fmt: skip
        with contextlib.suppress(OSError):
            conn.sendall(f"P {pid}\n".encode())

    def client_event(self, pid: int) -> None:
        """The client only ever closes its end: it died, so its command goes too."""
        conn, _ = self.children[pid]
        with contextlib.suppress(OSError):
            if conn.recv(64):
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.sel.unregister(conn)

    def reap(self, pid: int) -> None:
        conn, pidfd = self.children.pop(pid)
        _, status, usage = os.wait4(pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"forkserver: pid {pid} status {status} cpu {cpu:.2f} (sys {usage.ru_stime:.2f})",
            file=sys.stderr,
            flush=True,
        )
        self.sel.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(f"X {status}\n".encode())
        conn.close()

    def shutdown(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        own = resource.getrusage(resource.RUSAGE_SELF)  # its imports and its side of each fork
        print(f"forkserver: served {self.served} commands; its own cpu"
              f" {own.ru_utime + own.ru_stime:.2f} (sys {own.ru_stime:.2f})", file=sys.stderr,
              flush=True)  # fmt: skip

    # ----------------------------------------------------------------- in the child

    def child(self, request: dict[str, Any], fds: list[int], conn: socket.socket) -> None:
        code = 1
        try:
            self.sel.close()
            self.listener.close()
            for other, pidfd in self.children.values():
                other.close()
                os.close(pidfd)
            conn.close()
            os.dup2(fds[0], 0, inheritable=True)
            os.dup2(fds[1], 1, inheritable=True)
            os.dup2(fds[2], 2, inheritable=True)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            code = run_command(request)
        except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            os._exit(code)


def _stdio() -> None:
    """Standard streams as a new interpreter would make them on fds 0-2."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors or "strict"

    def stream(fd: int, mode: str, errors: str, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered, encoding=encoding, errors=errors, line_buffering=line_buffering
        )

    sys.stdin = stream(0, "r", errors, False)
    sys.stdout = stream(1, "w", errors, os.isatty(1))
    sys.stderr = stream(2, "w", "backslashreplace", True)  # line-buffered, as Python's own
    vars(sys).update(__stdin__=sys.stdin, __stdout__=sys.stdout, __stderr__=sys.stderr)


def run_command(request: dict[str, Any]) -> int:
    """Become ``keizoku ARGS``: the console script, run as ``__main__``."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    _stdio()
    script = request["exe"]
    sys.argv = [script, *request["args"]]
    sys.path[0] = os.path.dirname(script)
    random.seed()
    tempfile.tempdir = None  # TMPDIR is read again, as a new process would
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    fresh_imports()
    code: int = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        code = _exit_code(done.code)
    except BaseException:  # noqa: BLE001 - what the interpreter prints, and its code
        traceback.print_exc()
        code = 1
    # What the interpreter does at exit when the script ends without keizoku's own
    # `leave` (a SystemExit raised past it, as uvicorn's does): join the threads that are
    # not daemons, run the atexit handlers (the server shares its request counts there).
    # Not `leave` itself: it raises SystemExit under a tracer, and it cannot be imported
    # when keizoku's own import is what failed; the child must end with `code` regardless.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(OSError, ValueError):
        print(value, file=sys.stderr)
    return 1


# -------------------------------------------------------------------------- the client

CLIENT = r"""#!{python} -IS
# Generated by tests/forkserver.py: `keizoku` as a child of the test fork server.
# Built-in modules only (_socket, _signal, marshal): socket, signal and json would import
# enum and re, half of this process's own CPU (decision 0008, s14).
import _signal, _socket, marshal, os, sys
REAL = {real!r}
WAIT_S = {wait_s!r}
def real(why=""):
    log = os.environ.get("KEIZOKU_TEST_FORK_LOG")
    if log and why:  # what ran the real executable, and why (decision 0008, s12)
        with open(log, "a") as fh:
            fh.write(f"{{why}}\t{{' '.join(sys.argv[1:])}}\n")
    os.execv(REAL, [REAL, *sys.argv[1:]])
path = os.environ.get("KEIZOKU_TEST_FORKSERVER")
if not path:
    real("no server in the environment")
if not os.path.exists(path):
    # while the server imports (a few seconds after the run starts), wait for it rather
    # than pay those imports again in a real process; bounded, and not when it gave up
    import time
    warming, deadline = path + ".warming", time.monotonic() + WAIT_S
    while os.path.exists(warming) and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not os.path.exists(path):
        real("server not listening yet")
s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
try:
    s.connect(path)
except OSError:
    real("server refused the connection")
mask = os.umask(0); os.umask(mask)
body = marshal.dumps({{"exe": REAL, "args": sys.argv[1:], "cwd": os.getcwd(),
                      "env": dict(os.environ), "umask": mask}})
pending = []
child = [0]
def forward(sig, frame):
    if child[0]:
        os.kill(child[0], sig)
    else:
        pending.append(sig)
for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
            _signal.SIGUSR1, _signal.SIGUSR2):
    _signal.signal(sig, forward)
fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))  # three C ints
s.sendmsg([len(body).to_bytes(8, "big")], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
s.sendall(body)
received = [b""]
def readline():
    while b"\n" not in received[0]:
        chunk = s.recv(64)
        if not chunk:
            return b""
        received[0] += chunk
    line, _, received[0] = received[0].partition(b"\n")
    return line + b"\n"
line = readline()
if line == b"F\n" or not line:
    real("server declined")
child[0] = int(line.split()[1])
for sig in pending:
    os.kill(child[0], sig)
line = readline()
if not line.startswith(b"X "):
    sys.stderr.write("keizoku (test fork server): the server went away mid-command\n")
    os._exit(70)
status = int(line.split()[1])
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)
os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
"""


# How long a client waits for a server that is still importing (``PATH.warming`` exists)
# before it runs the real executable instead.
WARMING_WAIT_S = 30.0


def client_script(python: str, real: str) -> str:
    return CLIENT.format(python=python, real=real, wait_s=WARMING_WAIT_S)


STARTED = time.time()  # before the imports (settle_finders)


def main() -> None:
    """Serve at ``argv[1]``. The starter creates ``argv[1] + ".warming"`` first; this
    process removes it once it listens or has given up, so clients stop waiting."""
    os.environ.pop("KEIZOKU_TEST_FORKSERVER", None)
    warming = sys.argv[1] + ".warming"
    try:
        for line in warm():
            print(f"forkserver: warning while importing: {line}", file=sys.stderr)
        if any(name in sys.modules for name in COLD) or threads() != 1:
            # a pre-imported library started a thread or loaded what must not be forked:
            # every command falls back to the real executable
            print(f"forkserver: not serving ({threads()} threads)", file=sys.stderr)
            os.unlink(warming)
            sys.stdin.read()
            return
        print(f"forkserver: {settle_finders(STARTED)} folder listings dropped", file=sys.stderr)
        kept = keep_finalizers()
        print(f"forkserver: {kept} finalizers left out of the children's exit", file=sys.stderr)
        print(f"forkserver: {collapse()}", file=sys.stderr, flush=True)  # the last: after imports
        server = Server(sys.argv[1])
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(warming)
    server.serve()


if __name__ == "__main__":
    main()
