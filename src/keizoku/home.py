"""Where keizoku keeps its state: one folder, ``KEIZOKU_HOME`` (default ``./.keizoku``)."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "append_durably",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_lock",
    "home",
    "mlflow_uri",
]


def home() -> Path:
    """Return the keizoku home folder, creating it if needed."""
    path = Path(os.environ.get("KEIZOKU_HOME", ".keizoku")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_uri() -> str:
    """Tracking/registry URI: ``KEIZOKU_TRACKING_URI`` or SQLite under the home folder."""
    uri = os.environ.get("KEIZOKU_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{home() / 'mlflow.db'}"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def file_lock(path: str | Path, mode: int = 0o644) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block.

    Yields the descriptor, opened for appending, so a journal can write under its own
    lock. Every cross-process lock in keizoku (per-model, per-deployment, audit files)
    is this one function.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
