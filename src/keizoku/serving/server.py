"""uvicorn's server, stopping as soon as it is told to (``keizoku serve`` with one worker).

uvicorn checks for a stop every 0.1 s (its main loop sleeps between ticks) and, once
stopping, pauses a fixed 0.1 s after asking its connections to close, then checks every
0.1 s whether they have: ~0.2 s after SIGTERM on an idle server, more while requests
finish. :class:`PromptServer` is the same server with two changes:

- a stop signal wakes the main loop at once instead of at its next tick;
- the shutdown waits for connections with a short poll (:data:`POLL_S`) instead of fixed
  0.1 s pauses. What it waits for is unchanged: in-flight requests finish (up to
  ``timeout_graceful_shutdown``), then the lifespan's shutdown (the prediction log is
  flushed); it logs the same lines, "Waiting for connections to close" still only when
  connections remain 0.1 s after they were asked to close.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn

__all__ = ["POLL_S", "PromptServer"]

POLL_S = 0.005  # how often a stopping server looks whether its connections have closed
SETTLE_S = 0.1  # uvicorn's pause before it says it waits for connections (kept for its log)

_log = logging.getLogger("uvicorn.error")  # where uvicorn logs its shutdown


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PromptServer(uvicorn.Server):
    """A ``uvicorn.Server`` whose stop does not wait for its 0.1 s ticks."""

    TICK_S = 0.1  # uvicorn's tick: the Date header once a second, the request limit

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop (a tick every :attr:`TICK_S`), each pause ended early by
        :meth:`handle_exit`."""
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            await self._pause(self.TICK_S)
            should_exit = await self.on_tick(counter)

    async def _pause(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)`` that :meth:`handle_exit` can end (the same cost: a
        future and a timer)."""
        assert self._loop is not None
        waiter = self._loop.create_future()
        timer = self._loop.call_later(seconds, _wake, waiter)
        self._waiter = waiter
        try:
            if not self.should_exit:  # a signal between the tick and here
                await waiter
        finally:
            self._waiter = None
            timer.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        waiter, loop = self._waiter, self._loop
        if waiter is not None and loop is not None and not loop.is_closed():
            # a signal handler runs between two bytecodes of the loop's thread: hand the
            # wake-up to the loop as asyncio's own signal handling does
            loop.call_soon_threadsafe(_wake, waiter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (stop accepting, close idle connections, let in-flight
        requests finish within ``timeout_graceful_shutdown``, then the lifespan's
        shutdown), waiting by polling every :data:`POLL_S` instead of 0.1 s pauses."""
        _log.info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await self._while_connections(SETTLE_S)
        try:
            await asyncio.wait_for(self._drain(), timeout=self.config.timeout_graceful_shutdown)
        except TimeoutError:
            _log.error(
                "Cancel %s running task(s), timeout graceful shutdown exceeded",
                len(self.server_state.tasks),
            )
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _while_connections(self, at_most: float | None = None) -> None:
        """Until every connection has closed (or ``at_most`` seconds, or a forced exit)."""
        loop = asyncio.get_running_loop()
        deadline = None if at_most is None else loop.time() + at_most
        while self.server_state.connections and not self.force_exit:
            if deadline is not None and loop.time() >= deadline:
                return
            await asyncio.sleep(POLL_S)

    async def _drain(self) -> None:
        """uvicorn's wait for connections, then for background tasks; the same log lines."""
        if self.server_state.connections and not self.force_exit:
            _log.info("Waiting for connections to close. (CTRL+C to force quit)")
            await self._while_connections()
        if self.server_state.tasks and not self.force_exit:
            _log.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            while self.server_state.tasks and not self.force_exit:
                await asyncio.sleep(POLL_S)
        for server in self.servers:
            await server.wait_closed()
