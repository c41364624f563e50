"""Where keizoku keeps its state: one folder, the *home*, found as git finds a repository.

``KEIZOKU_HOME`` wins when set. Otherwise keizoku walks up from the current directory to
the nearest folder holding a ``.keizoku`` folder or a ``keizoku.yaml`` spec; that
folder's ``.keizoku`` is the home. With neither anywhere above, the home is
``./.keizoku`` (created by the commands that write, never by those that only read:
see :func:`find_home`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOME_DIR",
    "HOME_ENV",
    "SPEC_NAME",
    "Home",
    "append_durably",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_lock",
    "find_home",
    "find_spec",
    "home",
    "remove_leftover_temporaries",
    "mlflow_uri",
    "sha256_file",
]

HOME_ENV = "KEIZOKU_HOME"
HOME_DIR = ".keizoku"
SPEC_NAME = "keizoku.yaml"


@dataclass(frozen=True)
class Home:
    """Which home is used and why (``keizoku -v`` prints it)."""

    path: Path
    reason: str  # "KEIZOKU_HOME", "found", or "new" (nothing above the current directory)

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def describe(self) -> str:
        why = {
            "KEIZOKU_HOME": f"from {HOME_ENV}",
            "found": f"found above {Path.cwd()}",
            "new": f"no {HOME_DIR} or {SPEC_NAME} in {Path.cwd()} or above",
        }[self.reason]
        state = "" if self.exists else ", not created yet"
        return f"{self.path} ({why}{state})"


def _project_root(start: Path) -> Path | None:
    """The nearest folder from ``start`` upwards holding ``.keizoku`` or ``keizoku.yaml``."""
    for folder in (start, *start.parents):
        if (folder / HOME_DIR).is_dir() or (folder / SPEC_NAME).is_file():
            return folder
    return None


def find_home() -> Home:
    """The home keizoku uses from the current directory, without creating it."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Home(Path(env).expanduser().resolve(), "KEIZOKU_HOME")
    cwd = Path.cwd().resolve()
    root = _project_root(cwd)
    if root is None:
        return Home(cwd / HOME_DIR, "new")
    return Home(root / HOME_DIR, "found")


def find_spec(start: Path | None = None) -> Path | None:
    """The nearest ``keizoku.yaml`` from ``start`` (default: the current directory) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SPEC_NAME).is_file():
            return folder / SPEC_NAME
    return None


def home() -> Path:
    """Return the keizoku home folder (:func:`find_home`), creating it if needed."""
    path = find_home().path
    path.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_uri() -> str:
    """Tracking/registry URI: ``KEIZOKU_TRACKING_URI``, else the database of
    ``KEIZOKU_STORE`` (:func:`keizoku.store.tracking_uri`), else SQLite under the home."""
    uri = os.environ.get("KEIZOKU_TRACKING_URI")
    if uri:
        return uri
    from keizoku.store import tracking_uri  # the store sits beside home, and imports it

    return tracking_uri() or f"sqlite:///{home() / 'mlflow.db'}"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write, synced and renamed onto ``path`` when the
    block exits cleanly; removed when it does not (a reader never sees a partial file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{_temporary_prefix(target)}{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def remove_leftover_temporaries(path: str | Path) -> None:
    """Remove the temporary files ``atomic_path(path)`` left beside ``path`` in processes
    that were killed before they could (call it while no other process writes ``path``)."""
    target = Path(path)
    for stale in target.parent.glob(f"{_temporary_prefix(target)}*"):
        stale.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def file_lock(path: str | Path, mode: int = 0o644, wait_s: float | None = None) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block.

    Yields the descriptor, opened for appending, so a journal can write under its own
    lock. ``wait_s=None`` waits as long as it takes; otherwise a ConflictError names the
    lock after ``wait_s`` seconds. The embedded store's locks (per-model, per-deployment,
    audit files) and the SQLite registry's schema lock are this one function; with
    ``KEIZOKU_STORE`` they are advisory locks (:mod:`keizoku.store`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        _flock(fd, target, wait_s)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock(fd: int, path: Path, wait_s: float | None) -> None:
    if wait_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                from keizoku.errors import ConflictError

                raise ConflictError(
                    f"Another process has held the lock {path} for over {wait_s:g} s. Wait "
                    "for the other keizoku command to finish, or stop it; then run the "
                    "command again."
                ) from None
            time.sleep(0.05)


def append_durably(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Append ``data`` under the file's lock and ``fsync`` before returning."""
    with file_lock(path, mode) as fd:
        os.write(fd, data)
        os.fsync(fd)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
