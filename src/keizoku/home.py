"""Where keizoku keeps its state: one folder, ``KEIZOKU_HOME`` (default ``./.keizoku``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "mlflow_uri", "atomic_write_bytes", "atomic_write_text"]


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
