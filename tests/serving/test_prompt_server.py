"""keizoku's uvicorn server (``serving.server.PromptServer``): a stop wakes it at once, and
its shutdown is still graceful (in-flight requests answered, idle connections closed,
the lifespan's shutdown last)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from keizoku.serving.server import PromptServer
from kzsupport import free_port, until


class Recorder:
    """A bare ASGI app: ``/slow`` answers once ``gate`` is set; what happened, in order."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.events: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.events.append("lifespan shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/slow":
            self.events.append("slow started")
            await asyncio.to_thread(self.gate.wait, 60)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": path.encode()})
        self.events.append(f"answered {path}")


class HourTick(PromptServer):
    TICK_S = 3600.0  # were a stop to wait for the next tick, it would wait an hour


@contextmanager
def running(
    server_class: type[uvicorn.Server], app: Recorder
) -> Iterator[tuple[Any, str, threading.Thread]]:
    """``app`` served by ``server_class`` on a thread (no signal handlers there: the test
    calls ``handle_exit`` as the SIGTERM handler would)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = server_class(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 30, "the server started")
    try:
        yield server, f"http://127.0.0.1:{port}", thread
    finally:
        server.should_exit = server.force_exit = True
        app.gate.set()
        thread.join(60)


def test_a_stop_wakes_the_main_loop_between_ticks() -> None:
    app = Recorder()
    with running(HourTick, app) as (server, url, thread):
        assert httpx.get(f"{url}/fast").text == "/fast"
        stopping = threading.Thread(target=server.handle_exit, args=(signal.SIGTERM, None))
        stopping.start()
        until(lambda: "lifespan shutdown" in app.events, 60, "the shutdown, long before a tick")
        thread.join(60)
        assert not thread.is_alive()
    assert app.events == ["answered /fast", "lifespan shutdown"]


def test_the_shutdown_answers_in_flight_requests_and_closes_idle_connections() -> None:
    app = Recorder()
    answers: list[httpx.Response] = []
    with running(HourTick, app) as (server, url, _), httpx.Client(base_url=url) as idle:
        assert idle.get("/fast").status_code == 200  # a keep-alive connection, idle now

        def slow() -> None:
            answers.append(httpx.get(f"{url}/slow", timeout=60))

        client = threading.Thread(target=slow)
        client.start()
        until(lambda: "slow started" in app.events, 30, "the slow request in flight")
        server.handle_exit(signal.SIGTERM, None)
        until(lambda: not server.servers[0].is_serving(), 30, "the listener closed")
        assert "lifespan shutdown" not in app.events  # the request is still in flight
        app.gate.set()
        client.join(60)
        until(lambda: "lifespan shutdown" in app.events, 60, "the shutdown")
        with pytest.raises(httpx.TransportError):
            idle.get("/fast")  # its connection was closed, and nothing listens any more
    assert [a.status_code for a in answers] == [200] and answers[0].text == "/slow"
    assert app.events == ["answered /fast", "slow started", "answered /slow", "lifespan shutdown"]
