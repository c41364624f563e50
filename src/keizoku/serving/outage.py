"""A store that does not answer: 503 with ``Retry-After``, never 400 or 500.

The store (``KEIZOKU_STORE`` or the home's files) and MLflow's registry report a lost
connection in their own ways: the PostgreSQL store as a ``UserInputError`` naming
``KEIZOKU_STORE``, MLflow as its own exception, SQLite as ``sqlite3.Error`` or ``OSError``.
None of them can tell "the store is away" from "the request is wrong", so the server asks
the store itself: when a request fails in a way the store could explain (``suspect``),
``outage`` probes it (a key lookup and a registry listing, at most once a second per
process) and, if the probe fails too, answers ``StoreUnavailableError`` instead of the
original error. Decision 0028 lists which routes need the store and which do not.

At start-up (``startup_outage``) the same probe decides whether a failure to load the
models is an outage: then the server starts anyway, not ready, answers 503
``store_unavailable`` and retries until the store answers (decision 0028, s7 section).
"""

from __future__ import annotations

import threading
import time

from keizoku.errors import AuthError, DataError, KeizokuError

__all__ = [
    "RETRY_AFTER_S",
    "StoreUnavailableError",
    "outage",
    "startup_outage",
    "store_problem",
    "suspect",
]

RETRY_AFTER_S = 5.0  # what a 503 asks the client to wait: about one registry poll
PROBE_EVERY_S = 1.0


class StoreUnavailableError(KeizokuError):
    """The store (keys, registry, deployments) does not answer: try again shortly."""

    code = "store_unavailable"
    http_status = 503
    retry_after_s = RETRY_AFTER_S


_last: list[tuple[float, str | None]] = []
_lock = threading.Lock()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _probe() -> str | None:
    from keizoku.registry.models import list_models
    from keizoku.store import store_from_env

    store = store_from_env()
    try:
        store.has_active_key()
    except KeizokuError as exc:  # the PostgreSQL store's own one-line message (no password)
        return exc.message
    except Exception as exc:  # noqa: BLE001 - SQLite and the file system raise their own
        return f"{store.describe()} cannot be read: {_first_line(exc)}."
    try:
        list_models()
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own (its text may hold a URL)
        return f"The model registry does not answer ({type(exc).__name__})."
    return None


def store_problem() -> str | None:
    """Why the store does not answer now, or None when it does (probed at most once a second)."""
    with _lock:
        now = time.monotonic()
        if _last and now - _last[0][0] < PROBE_EVERY_S:
            return _last[0][1]
        problem = _probe()
        _last[:] = [(time.monotonic(), problem)]
        return problem


def suspect(exc: BaseException) -> bool:
    """Could the store's absence explain ``exc``? (Not a bad body, a key, a gate, a hash.)"""
    if not isinstance(exc, KeizokuError):
        return True
    if isinstance(exc, DataError | AuthError):
        return False
    return exc.http_status in (400, 404, 500)


def _behind(exc: BaseException) -> str | None:
    """Why the store does not answer, when its absence could explain ``exc``; else None."""
    return store_problem() if suspect(exc) else None


def outage(exc: BaseException) -> StoreUnavailableError | None:
    """The 503 to answer instead of ``exc`` when the store is away; None when it answers."""
    problem = _behind(exc)
    if problem is None:
        return None
    return StoreUnavailableError(
        f"The store does not answer, so this request cannot be served now: {problem} "
        f"Retry in {RETRY_AFTER_S:g} s (Retry-After); predictions from loaded models go on."
    )


def startup_outage(exc: BaseException) -> StoreUnavailableError | None:
    """Why nothing could be loaded at start-up when the store is away (None: it answers,
    so ``exc`` is the real problem: a wrong ``--model``, a modified artifact)."""
    problem = _behind(exc)
    if problem is None:
        return None
    return StoreUnavailableError(
        f"The store does not answer, so no model is loaded yet: {problem} The server keeps "
        "trying and becomes ready by itself once the store answers."
    )
