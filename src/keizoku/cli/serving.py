"""CLI commands of keizoku.serving (registered on the main app by keizoku.cli.register).

``keizoku serve`` runs the REST server (``keizoku deploy`` lives in keizoku.cli.rollout).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from keizoku.serving.app import ServeOptions
    from keizoku.serving.state import ModelSet


def _serve(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model to serve (repeatable; default: all)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (non-loopback needs API keys).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    poll_interval: Annotated[
        float,
        typer.Option(help="Seconds between registry polls for moved aliases (0: off)."),
    ] = 5.0,
    prediction_log: Annotated[
        bool, typer.Option(help="Log every prediction under KEIZOKU_HOME/predictions.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    rate_limit: Annotated[
        str | None,
        typer.Option(
            help="Requests per caller (API key, or address without keys): 50/s, "
            "600/min. Over it: 429 with Retry-After. Default: no limit."
        ),
    ] = None,
    runtime: Annotated[
        str,
        typer.Option(
            help="python (the registered model) or onnx (each version's verified ONNX bundle, "
            "from `keizoku export`)."
        ),
    ] = "python",
    key_cache: Annotated[
        str,
        typer.Option(
            help="How long a key seen valid is trusted before the store is asked again (0: "
            "every request); a revoked key stops working within it."
        ),
    ] = "5s",
    beat_interval: Annotated[
        str | None,
        typer.Option(
            help="With --poll-interval 0: how often the server writes its heartbeat (default "
            "5s; a polling server beats at each poll). deploy, promote and rollback wait at "
            "least two of them for it."
        ),
    ] = None,
    share_interval: Annotated[
        str | None,
        typer.Option(
            help="How often each server process adds its request counts to the home's "
            "buckets, which the console's Monitoring page reads (default 5s; also at exit)."
        ),
    ] = None,
) -> None:
    """Serve the champion of each model over REST (FastAPI + uvicorn).

    Without --model: every registered model with a champion, including those registered
    later (picked up at the next poll); on an empty store the server starts not ready.
    """
    import uvicorn

    from keizoku.duration import parse_duration
    from keizoku.serving.app import OPTIONS_ENV, ServeOptions, create_app
    from keizoku.serving.ratelimit import parse_rate
    from keizoku.store import store_from_env

    store_from_env()  # a malformed KEIZOKU_STORE is configuration: exit 2 before anything
    _check_bind(host)
    if runtime not in ("python", "onnx"):
        from keizoku.errors import UserInputError

        raise UserInputError(f"--runtime {runtime!r} is not supported; use python or onnx.")
    if rate_limit is not None:
        parse_rate(rate_limit)  # a bad value: exit 2 before anything starts
    key_cache_s = parse_duration(key_cache, what="--key-cache")
    beat_interval_s = _beat_interval(beat_interval, poll_interval)
    share_interval_s = _share_interval(share_interval)
    _check_port_free(host, port)
    _exit_cleanly_on_sigterm()
    options = ServeOptions(
        models=list(model or []), host=host, port=port, poll_interval_s=poll_interval,
        prediction_log=prediction_log, rate_limit=rate_limit, runtime=runtime,
        key_cache_s=key_cache_s, beat_interval_s=beat_interval_s,
        share_interval_s=share_interval_s,
    )  # fmt: skip
    loaded = _load_or_wait(options, poll_interval)
    common = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 30}
    if workers == 1:
        _run(create_app(options, loaded), common)
        return
    import os

    os.environ[OPTIONS_ENV] = options.to_env()
    uvicorn.run("keizoku.serving.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]


def _run(app: object, common: dict[str, Any]) -> None:
    """``uvicorn.run(app, **common)`` for one worker, with keizoku's :class:`PromptServer`
    (a SIGTERM stops it at once, not at uvicorn's next 0.1 s tick; the same graceful
    shutdown): exit 3 when the server did not start, as uvicorn's own ``run``."""
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from keizoku.serving.server import PromptServer

    server = PromptServer(uvicorn.Config(app, **common))  # type: ignore[arg-type]
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _beat_interval(asked: str | None, poll_interval: float) -> float:
    """``--beat-interval`` in seconds (``ServeOptions``' default when not given); exit 2 when
    it is not a positive duration, or when it is given to a polling server (whose beats
    follow its polls)."""
    from keizoku.errors import UserInputError
    from keizoku.serving.app import ServeOptions

    if asked is None:
        return ServeOptions.beat_interval_s
    if poll_interval > 0:
        raise UserInputError(
            f"--beat-interval {asked!r} applies only with --poll-interval 0: a polling server "
            f"writes its heartbeat at each poll (--poll-interval {poll_interval:g}). Drop "
            "--beat-interval, or set --poll-interval 0."
        )
    return _period(asked, "--beat-interval", "a server reports what it serves")


def _share_interval(asked: str | None) -> float:
    """``--share-interval`` in seconds (``ServeOptions``' default when not given); exit 2
    when it is not a positive duration."""
    from keizoku.serving.app import ServeOptions

    if asked is None:
        return ServeOptions.share_interval_s
    return _period(asked, "--share-interval", "a server adds its request counts to the buckets")


def _period(asked: str, flag: str, does: str) -> float:
    """``asked`` (the value of ``flag``, a period at which a server ``does`` something) in
    seconds; exit 2 when it is not a duration above 0."""
    from keizoku.duration import parse_duration
    from keizoku.errors import UserInputError

    seconds = parse_duration(asked, what=flag)
    if seconds <= 0:
        raise UserInputError(
            f"{flag} {asked!r} must be more than 0 s: {does} at this period. Use e.g. 1s or 5s."
        )
    return seconds


def _load_or_wait(options: ServeOptions, poll_interval: float) -> ModelSet | None:
    """Fail fast on what the registry refuses (exit 3, 5...); nothing to serve yet is fine.
    The set when it is ready (a server with one worker serves it: each version is loaded
    and verified once), else None (the server's lifespan loads, or waits, as it starts).

    Without ``--model`` on a store with no servable model the server starts anyway, not
    ready (``/readyz`` 503 with the reason), and picks up the first model at a poll; with
    ``--poll-interval 0`` it never would, so that is exit 3. A store that does not answer
    is an outage, not an error: the server starts not ready and loads the models once it
    answers (``--model`` names are checked then).
    """
    from keizoku.errors import NotFoundError
    from keizoku.serving.app import model_set
    from keizoku.serving.outage import startup_outage

    models = model_set(options)
    try:
        models.load_all()
    except Exception as exc:
        down = startup_outage(exc)
        if down is None:
            raise
        typer.echo(f"warning: {down.message} Until then /readyz and predict answer 503 "
                   "store_unavailable.", err=True)  # fmt: skip
        return None
    if models.ready:
        return models
    reason = models.load_error or "Nothing to serve."
    if poll_interval <= 0:
        raise NotFoundError(f"{reason} (--poll-interval 0: the server would never pick it up.)")
    typer.echo(f"warning: {reason} Until then /readyz answers 503.", err=True)
    return None


def _check_bind(host: str) -> None:
    """Refuse a non-loopback bind without API keys (exit 2). When the store does not
    answer, the keys cannot be counted: start anyway, since beyond loopback every
    request needs a valid key, which the store must confirm first."""
    from keizoku.serving.outage import startup_outage
    from keizoku.serving.security import check_bind

    try:
        check_bind(host)
    except Exception as exc:
        down = startup_outage(exc)
        if down is None:
            raise
        typer.echo(f"warning: the API keys cannot be checked: {down.message}", err=True)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a busy port before loading models: exit 2 with the fix, not uvicorn's trace.

    Bound as uvicorn binds (``SO_REUSEADDR``), so a port in TIME_WAIT is not called busy.
    """
    import errno
    import socket

    from keizoku.errors import UserInputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserInputError(
                    f"--port {port} is already in use on {host} (another `keizoku serve`?). "
                    "Pass a free port with --port N, or stop the process that holds it."
                ) from exc
            raise UserInputError(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Check --host and --port."
            ) from exc


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM means "stop": exit 0 (uvicorn re-raises it after its graceful shutdown)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("serve")(_serve)
