"""``keizoku doctor``: check the registry store's schema, and repair an interrupted migration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keizoku.errors import ConflictError

__all__ = ["doctor", "register"]


def doctor(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Back the store up, drop tables left by an interrupted migration, migrate.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check the registry store (exit 0 healthy, 8 damaged); --repair fixes what it safely can."""
    from keizoku.home import mlflow_uri
    from keizoku.registry import backend

    uri = mlflow_uri()
    if repair:
        result = backend.repair(uri)
        health = result.after
        report = {**health.to_dict(), "backup": str(result.backup) if result.backup else None,
                  "dropped": result.dropped, "repaired": result.before.problems()}  # fmt: skip
    else:
        health = backend.check(uri)
        report = health.to_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if not health.ok:
        raise ConflictError(backend.damage_message(health))


def _print(report: dict[str, object]) -> None:
    typer.echo(f"store: {report['uri']}")
    typer.echo(f"schema: {report['revision'] or '(empty)'} (head {report['head']})")
    if report.get("journal_mode"):
        typer.echo(f"journal: {report['journal_mode']}")
    for fixed in report.get("repaired") or []:  # type: ignore[attr-defined]
        typer.echo(f"repaired: {fixed}")
    if report.get("backup"):
        typer.echo(f"backup: {report['backup']}")
    if report["ok"]:
        typer.echo("ok")


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the main app."""
    app.command("doctor")(doctor)
