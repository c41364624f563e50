"""CLI commands of keizoku.lifecycle (registered on the main app by keizoku.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
