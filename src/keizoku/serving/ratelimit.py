"""Requests per caller and second: one token bucket per API key (or client address).

``keizoku serve --rate-limit 50/s`` (also ``/min``, ``/h``) gives each caller a bucket
of 50 requests that refills at the rate: ``600/min`` allows 600 at once, then 10 a second.
A request that finds it empty gets 429 with ``Retry-After``. Every route that asks who
is calling (``boundary.caller``) is limited the same way: predictions, chat completions,
RAG, feedback, admin routes. Each server process counts on its own, so with
``--workers N`` (or N servers) a caller may get up to N times the rate.

Wrong API keys are throttled whatever ``--rate-limit`` says (``wrong_keys``): after 10
distinct wrong keys from one client address (API or console sign-in), that address may
try a key the server has never seen valid only once every 6 s; until then the key is not
even checked, and the answer is 429. Keys seen valid before are still checked (callers
behind one proxy share an address), and a wrong key sent again counts once.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from keizoku.errors import KeizokuError, UserInputError

__all__ = ["RateLimit", "RateLimitedError", "parse_rate", "wrong_keys"]

_PER = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_MAX_CALLERS = 100_000


class RateLimitedError(KeizokuError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def wrong_keys() -> RateLimit:
    """The throttle on wrong API keys per client address, always on: 10, then 1 every 6 s."""
    return RateLimit(
        rate=1 / 6,
        burst=10,
        text="10 wrong API keys a minute",
        what="wrong API keys",
        fix="with a valid key (`keizoku keys list` names them; `keys create` makes one)",
    )


def parse_rate(text: str) -> RateLimit:
    """``"50/s"``, ``"600/min"``, ``"10000/h"`` → a limit; a clear error otherwise."""
    count, _, unit = text.strip().partition("/")
    try:
        n = float(count)
    except ValueError:
        n = -1.0
    if n <= 0 or unit not in _PER or not math.isfinite(n):
        raise UserInputError(
            f"--rate-limit {text!r} is not a rate. Write requests per second, minute or hour, "
            "for example 50/s, 600/min or 10000/h."
        )
    rate = n / _PER[unit]
    return RateLimit(rate=rate, burst=max(1.0, n), text=text.strip())


@dataclass
class RateLimit:
    """A token bucket per caller; thread-safe (routes call it from worker threads)."""

    rate: float  # tokens per second
    burst: float  # bucket size
    text: str = ""
    what: str = "requests"
    fix: str = "or ask the operator to raise --rate-limit"
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, caller: str) -> None:
        """Spend one token of ``caller``'s bucket, or raise :class:`RateLimitedError`."""
        with self._lock:
            tokens, now = self._level(caller)
            self._buckets[caller] = (tokens, now)
            self._refuse_if_empty(caller, tokens)
            self._buckets[caller] = (tokens - 1.0, now)

    def check(self, caller: str) -> None:
        """Raise :class:`RateLimitedError` when ``caller``'s bucket is empty; spend nothing."""
        with self._lock:
            tokens, _ = self._level(caller)
            self._refuse_if_empty(caller, tokens)

    def spend(self, caller: str) -> None:
        """Spend one token of ``caller``'s bucket (never below empty); never raises."""
        with self._lock:
            tokens, now = self._level(caller)
            self._buckets[caller] = (max(0.0, tokens - 1.0), now)

    def _level(self, caller: str) -> tuple[float, float]:
        now = time.monotonic()
        if len(self._buckets) >= _MAX_CALLERS and caller not in self._buckets:
            self._buckets.clear()  # bounded memory: forgetting only forgives
        tokens, last = self._buckets.get(caller, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate), now

    def _refuse_if_empty(self, caller: str, tokens: float) -> None:
        if tokens < 1.0:
            wait = (1.0 - tokens) / self.rate
            raise RateLimitedError(
                f"Too many {self.what} from {caller}: the limit is {self.text or self.rate}. "
                f"Retry after {wait:.2f} s, {self.fix}.",
                wait,
            )
