"""CLI commands of keizoku.serving (registered on the main app by keizoku.cli.register).

``keizoku serve`` runs the REST server; ``keizoku deploy`` sets how a model's traffic is
split between aliases (A/B) or mirrored to a shadow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from keizoku.serving.deploy import Deployment


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
) -> None:
    """Serve the champion of each model over REST (FastAPI + uvicorn)."""
    import uvicorn

    from keizoku.serving.app import OPTIONS_ENV, ServeOptions, create_app
    from keizoku.serving.security import check_bind
    from keizoku.serving.state import ModelSet

    check_bind(host)
    _exit_cleanly_on_sigterm()
    options = ServeOptions(models=list(model or []), host=host, poll_interval_s=poll_interval,
                           prediction_log=prediction_log)  # fmt: skip
    ModelSet(names=options.models or None).load_all()  # fail fast, with the registry's message
    common = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 30}
    if workers == 1:
        uvicorn.run(create_app(options), **common)  # type: ignore[arg-type]
        return
    import os

    os.environ[OPTIONS_ENV] = options.to_env()
    uvicorn.run("keizoku.serving.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM means "stop": exit 0 (uvicorn re-raises it after its graceful shutdown)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def _deploy(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    split: Annotated[
        str | None,
        typer.Option(help="Traffic split by alias, e.g. champion=90,challenger=10."),
    ] = None,
    sticky_key: Annotated[
        str | None,
        typer.Option(help="Record field whose value always routes to the same variant."),
    ] = None,
    entity_key: Annotated[
        str | None, typer.Option(help="Record field echoed as entity_id (default: sticky key).")
    ] = None,
    shadow: Annotated[
        str | None, typer.Option(help="Alias that scores every request in the background.")
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Back to champion-only.")] = False,
) -> None:
    """Route a model's traffic: A/B split (random or sticky) and/or a shadow variant."""
    import json

    from keizoku.registry.store import resolve
    from keizoku.serving.deploy import (
        load_deployment,
        parse_split,
        reset_deployment,
        save_deployment,
    )

    if reset:
        reset_deployment(name)
        typer.echo(f"{name}: champion answers every request (deployment reset).")
        return
    current = load_deployment(name)
    data = current.model_dump()
    if split is not None:
        data["split"] = parse_split(split)
    if sticky_key is not None:
        data["sticky_key"] = sticky_key or None
    if entity_key is not None:
        data["entity_key"] = entity_key or None
    if shadow is not None:
        data["shadow"] = shadow or None
    deployment = _validated(data)
    for alias in deployment.aliases:
        resolve(f"{name}@{alias}")  # NotFoundError names the missing alias
    path = save_deployment(name, deployment)
    typer.echo(json.dumps(deployment.model_dump(), indent=2))
    typer.echo(f"Saved {path}; running servers pick it up at their next poll.", err=True)


def _validated(data: dict[str, Any]) -> Deployment:
    from pydantic import ValidationError as PydanticError

    from keizoku.errors import UserInputError
    from keizoku.serving.deploy import Deployment

    try:
        return Deployment.model_validate(data)
    except PydanticError as exc:
        msgs = "; ".join(e["msg"] for e in exc.errors())
        raise UserInputError(f"Deployment is not valid: {msgs}.") from exc


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("serve")(_serve)
    app.command("deploy")(_deploy)
