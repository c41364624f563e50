"""Helpers for the RAG tests (on sys.path for this folder, like tests/cli/cli_abalone.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import BaseServer
from typing import Any, TypeVar

import uvicorn

from kzsupport import free_port

S = TypeVar("S", bound=BaseServer)


def serve_in_thread(app: Any, lifespan: str = "auto") -> Iterator[str]:
    """``app`` on a free loopback port in a real uvicorn server: yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan=lifespan)  # type: ignore[arg-type]  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# How often a stand-in's ``serve_forever`` looks at its stop flag: ``shutdown()`` waits for
# that look (the default 0.5 s made every test that used a stand-in wait about as long).
STOP_POLL_S = 0.02


@contextmanager
def serving(server: S) -> Iterator[S]:
    """``server`` (a stand-in ``ThreadingHTTPServer``) answering on a thread of its own;
    stopped and closed at the end."""
    thread = threading.Thread(target=server.serve_forever, args=(STOP_POLL_S,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
