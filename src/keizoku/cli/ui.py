"""``keizoku ui mlflow``: the stock MLflow UI on keizoku's own store (nothing of ours runs)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["mlflow_command", "register"]

ui_app = typer.Typer(help="Open other tools on keizoku's store.", no_args_is_help=True)


def mlflow_command(host: str, port: int) -> list[str]:
    """``mlflow ui`` with keizoku's backend store and artifact root (the same runs, models)."""
    from keizoku.home import home, mlflow_uri

    exe = Path(sys.executable).with_name("mlflow")
    artifacts = os.environ.get("KEIZOKU_ARTIFACT_ROOT") or (home() / "artifacts").as_uri()
    return [
        str(exe) if exe.exists() else "mlflow", "ui",
        "--backend-store-uri", mlflow_uri(),
        "--default-artifact-root", artifacts,
        "--host", host, "--port", str(port),
    ]  # fmt: skip


@ui_app.command("mlflow")
def mlflow_ui(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the command instead of running it.")
    ] = False,
) -> None:
    """Run MLflow's own UI on this project's store (read it; change state with keizoku)."""
    from keizoku.errors import UserInputError
    from keizoku.home import find_home

    if "KEIZOKU_TRACKING_URI" not in os.environ and not (find_home().path / "mlflow.db").exists():
        raise UserInputError(
            f"No keizoku store at {find_home().describe()}: run it in a project's folder, "
            "or set KEIZOKU_HOME."
        )
    cmd = mlflow_command(host, port)
    if print_only:
        typer.echo(shlex.join(cmd))
        return
    os.execvp(cmd[0], cmd)


def register(app: typer.Typer) -> None:
    """Add the ``ui`` group to the main app."""
    app.add_typer(ui_app, name="ui")
