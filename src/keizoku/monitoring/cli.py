"""CLI commands of keizoku.monitoring (registered on the main app by keizoku.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def feedback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV/Parquet/JSON(L) with request_id and/or entity_id, label, optional ts."
        ),
    ],
) -> None:
    """Store true labels for earlier predictions (joined to the prediction log by id)."""
    from rich.console import Console

    from keizoku.monitoring.feedback import read_feedback_file, record_feedback

    n = record_feedback(name, read_feedback_file(file))
    Console().print(f"Stored {n} labels for '{name}'.")


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("feedback")(feedback)
