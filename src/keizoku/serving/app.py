"""The FastAPI application behind ``keizoku serve``.

``create_app(options)`` builds it; the lifespan loads the models (``/readyz`` answers 503
until they are) unless the caller passed a set it has loaded already (``keizoku serve``
loads before it binds the port, so that a model that cannot load is an exit code, and
each version is unpickled once), opens the prediction log, starts the registry poller
(hot swap), and on shutdown (SIGTERM: uvicorn lets in-flight requests finish first) stops
the poller and closes the prediction log so every accepted record reaches the disk.

Without ``--model`` the poller also picks up models registered after startup; on an empty
store the server runs not ready (``/readyz`` 503 with the reason, ``/healthz`` 200) until
one has a champion (decision 0028). A store that does not answer at start-up is the same
state as an outage later: the server starts, not ready (503 ``store_unavailable``), and
loads the models by itself once the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from keizoku.errors import KeizokuError
from keizoku.serving import boundary
from keizoku.serving.metrics import SHARE_S, Metrics
from keizoku.serving.openapi import install_openapi
from keizoku.serving.outage import RETRY_AFTER_S, startup_outage
from keizoku.serving.ratelimit import parse_rate
from keizoku.serving.routes import ServerState, add_predict_route, router
from keizoku.serving.security import Guard, is_loopback
from keizoku.serving.state import ModelSet

__all__ = ["ServeOptions", "create_app", "app_from_env", "OPTIONS_ENV"]

OPTIONS_ENV = "KEIZOKU_SERVE_OPTIONS"
_log = logging.getLogger("keizoku.serving")


@dataclass
class ServeOptions:
    """What ``keizoku serve`` was asked for."""

    models: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int | None = None
    poll_interval_s: float = 5.0
    prediction_log: bool = True
    log_flush_s: float = 1.0
    rate_limit: str | None = None  # e.g. "50/s": requests per caller (serving/ratelimit.py)
    runtime: str = "python"  # "onnx": score with each version's ONNX bundle (docs/export.md)
    key_cache_s: float = 5.0  # a key seen valid is trusted this long (a revocation's delay)
    beat_interval_s: float = 5.0  # the heartbeat's period when polling is off
    share_interval_s: float = SHARE_S  # request counts to the home's buckets (metrics.py)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeOptions:
        return cls(**json.loads(os.environ.get(OPTIONS_ENV, "{}")))


def _open_log(options: ServeOptions) -> Any:
    if not options.prediction_log:
        return None
    from keizoku.monitoring.log import PredictionLog

    return PredictionLog(flush_interval_s=options.log_flush_s)


def _served(state: ServerState) -> dict[str, tuple[dict[str, int], Any]]:
    """What the server serves, per model: the version behind each variant, the deployment."""
    return {n: (m.versions(), m.deployment) for n, m in list(state.models.models.items())}


async def _poll(
    state: ServerState, interval: float, loading: asyncio.Task[None], changed: asyncio.Event
) -> None:
    """Every ``interval`` seconds, pick up moved aliases, changed deployments and new models;
    set ``changed`` when what is served changed (the heartbeat reports it at once)."""
    await loading
    while True:
        await asyncio.sleep(interval)
        if not (state.models.ready or state.models.discovers):
            continue
        before = _served(state)
        try:
            await asyncio.to_thread(state.models.refresh_all)
        except Exception as exc:  # noqa: BLE001 - a poll error must never stop the poller
            _log.error("Registry poll failed: %s", exc)
        if _served(state) != before:
            changed.set()


async def _tick(interval: float, changed: asyncio.Event) -> None:
    """Sleep ``interval`` seconds, or less: until the poller says what is served changed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), interval)
    changed.clear()


MIN_BEAT_S = 1.0  # an unchanged beat is rewritten at least this far apart (beat_ticks)


def beat_ticks(interval: float) -> int:
    """Every how many heartbeat ticks an unchanged beat is written again: a beat that says
    the same thing is rewritten about every :data:`MIN_BEAT_S`, never less often than
    every tick. The beat's ``interval_s`` is that period, so readers judge it as before."""
    return max(1, math.ceil(MIN_BEAT_S / interval - 1e-9))


async def _heartbeat(
    state: ServerState, options: ServeOptions, loading: asyncio.Task[None], changed: asyncio.Event
) -> None:
    """Write this server's heartbeat (what it serves) every poll interval; when polling is
    off, every ``options.beat_interval_s`` (``--beat-interval``, 5 s by default).

    A beat whose content (the served versions, deployments, request counts) did not change
    is written only every ``beat_ticks`` ticks, saying so in its ``interval_s``; a change
    is written at the next tick, and a poll that changed what is served (``changed``) ends
    the tick at once: ``promote`` and ``deploy`` wait for a poll, not a poll and a tick.
    A discovering server beats while it serves nothing yet too: ``promote`` waits for it.
    """
    from keizoku.lifecycle.servers import snapshot, write_beat

    interval = options.poll_interval_s if options.poll_interval_s > 0 else options.beat_interval_s
    every = beat_ticks(interval)
    started = time.time()
    written: tuple[int, dict[str, Any]] | None = None  # (tick, content) of the last beat
    await loading
    for tick in itertools.count():
        if state.models.ready or (state.models.discovers and options.poll_interval_s > 0):
            content = snapshot(state.models)
            if written is None or written[1] != content or tick - written[0] >= every:
                try:
                    await asyncio.to_thread(
                        write_beat, state.models, port=options.port, bind=options.host,
                        started=started, interval_s=every * interval,
                    )  # fmt: skip
                    written = (tick, content)
                except (OSError, KeizokuError) as exc:  # the store may be away for a while
                    _log.error("Could not write the heartbeat: %s", exc)
                    written = None
        await _tick(interval, changed)


def _log_served(models: ModelSet) -> None:
    versions = {n: m.versions() for n, m in models.models.items()}
    _log.info("Serving %s", versions)


async def _load(state: ServerState, retry_s: float) -> None:
    """Load the models (not again when the set is ready: loaded before the app was built);
    while the store does not answer, stay not ready (503 ``store_unavailable``) and try
    again every ``retry_s`` seconds (decision 0028)."""
    if state.models.ready:
        _log_served(state.models)
        return
    told: str | None = None
    while True:
        try:
            await asyncio.to_thread(state.models.load_all)
        except Exception as exc:  # noqa: BLE001 - logged; /readyz says why; the poller goes on
            down = await asyncio.to_thread(startup_outage, exc)
            if down is not None:
                state.models.wait_for_store(down.message)
                if down.message != told:
                    _log.error("%s Retrying every %g s.", down.message, retry_s)
                    told = down.message
                await asyncio.sleep(retry_s)
                continue
            _log.error("Could not load the models: %s", getattr(exc, "message", exc))
            state.models.store_down = False
            if state.models.load_error is None:
                state.models.load_error = f"Could not load the models: {exc}"
        else:
            if told is not None:
                _log.info("The store answers again.")
            if state.models.ready:
                _log_served(state.models)
            else:
                _log.warning("Not ready: %s", state.models.load_error)
        return


def _lifespan(options: ServeOptions) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServerState = app.state.keizoku
        state.log = _open_log(options)
        retry_s = min(options.poll_interval_s or RETRY_AFTER_S, RETRY_AFTER_S)
        loading = asyncio.create_task(_load(state, retry_s))
        changed = asyncio.Event()  # set by the poller, read by the heartbeat
        tasks = [loading, asyncio.create_task(_heartbeat(state, options, loading, changed))]
        if options.poll_interval_s > 0:
            poll = _poll(state, options.poll_interval_s, loading, changed)
            tasks.append(asyncio.create_task(poll))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            from keizoku.lifecycle.servers import remove_beat

            remove_beat()
            if state.log is not None:
                await asyncio.to_thread(state.log.close)
                state.log = None

    return lifespan


def model_set(options: ServeOptions) -> ModelSet:
    """The set of models ``options`` serve, not loaded yet; its metrics add the request
    counts to the home's buckets every ``options.share_interval_s``."""
    metrics = Metrics(share_s=options.share_interval_s)
    return ModelSet(names=options.models or None, metrics=metrics, runtime=options.runtime)


def create_app(options: ServeOptions | None = None, models: ModelSet | None = None) -> FastAPI:
    """The serving app for ``options``.

    The models load in the lifespan, i.e. at startup; ``models``: a set for ``options``'
    models and runtime that the caller has loaded already (served as it is when ready).
    """
    from keizoku import __version__

    options = options or ServeOptions()
    if models is None:
        models = model_set(options)
    metrics = models.metrics
    app = FastAPI(
        title="keizoku model server",
        version=str(__version__),
        description="Predictions from registered keizoku models. See docs/serving.md.",
        lifespan=_lifespan(options),
        docs_url=None,
    )
    _offline_docs(app)
    limit = parse_rate(options.rate_limit) if options.rate_limit else None
    guard = Guard(loopback=is_loopback(options.host), ttl_s=options.key_cache_s, limit=limit)
    app.state.keizoku = ServerState(models, guard, metrics)
    add_predict_route(app)
    _add_routes(app, router)
    _include_routers(app)
    boundary.install(app)  # the one handler: every error in keizoku's format
    install_openapi(app, models.models)
    return app


STATIC = Path(__file__).with_name("static")


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files shipped in the package: works without internet."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/static/keizoku", StaticFiles(directory=STATIC), name="keizoku-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="keizoku model server",
            swagger_js_url="/static/keizoku/swagger-ui-bundle.js",
            swagger_css_url="/static/keizoku/swagger-ui.css",
            swagger_favicon_url="data:,",
        )


def _include_routers(app: FastAPI) -> None:
    """Routers of other keizoku packages served by the same process."""
    from keizoku.serving.explain_routes import router as explain_router
    from keizoku.serving.feedback_routes import router as feedback_router
    from keizoku.serving.forecast_routes import router as forecast_router
    from keizoku.serving.image_routes import router as image_router
    from keizoku.serving.openai_routes import router as openai_router
    from keizoku.serving.rag_routes import router as rag_router

    for other in (feedback_router, explain_router, forecast_router, image_router, rag_router,
                  openai_router):  # fmt: skip
        _add_routes(app, other)
    from keizoku.console import router as console_router  # the web console, /console

    _add_routes(app, console_router)


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """What ``app.include_router(router)`` serves, for a router that the app adds nothing
    to (no prefix, tags, dependencies or responses of the app's own): the router's routes
    themselves, which already carry its prefix, tags, route class and schema flag.

    FastAPI's ``include_router`` makes a copy of every route per app, and recent FastAPI
    makes each copy (its parameters' and response's pydantic adapters) the first time a
    request looks at it: ~13 ms of a server's first ``/readyz``, every route of every
    router at its first 404. These routes were built once, when their module was imported.
    """
    app.router.routes.extend(router.routes)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``keizoku serve --workers N``)."""
    return create_app(ServeOptions.from_env())
