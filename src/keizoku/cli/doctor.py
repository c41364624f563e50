"""``keizoku doctor``: check the registry store's schema, and repair an interrupted migration.

It also warns about settings that work on one machine but not on several: a PostgreSQL
``KEIZOKU_STORE`` without ``KEIZOKU_LOG_ROOT`` (each server's prediction log stays in its
own home, out of sight of ``monitor`` elsewhere). A warning does not change the exit code.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keizoku.errors import ConflictError

__all__ = ["doctor", "register", "setting_warnings"]


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

    warnings = setting_warnings()
    if not as_json:
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
    uri = mlflow_uri()
    if repair:
        result = backend.repair(uri)
        health = result.after
        report = {**health.to_dict(), "backup": str(result.backup) if result.backup else None,
                  "dropped": result.dropped, "repaired": result.before.problems()}  # fmt: skip
    else:
        health = backend.check(uri)
        report = health.to_dict()
    report["warnings"] = warnings
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if not health.ok:
        raise ConflictError(backend.damage_message(health))


def setting_warnings() -> list[str]:
    """What in the environment will not work across machines, each with its fix."""
    import os

    from keizoku.monitoring.log import log_root
    from keizoku.store import STORE_ENV, store_from_env

    found = []
    if store_from_env().kind != "embedded" and not os.environ.get("KEIZOKU_LOG_ROOT"):
        found.append(
            f"{STORE_ENV} names a shared PostgreSQL store but KEIZOKU_LOG_ROOT is unset: this "
            f"process keeps the prediction log and feedback in {log_root()}, where `keizoku "
            "monitor` and the loop on another machine cannot see them. Set KEIZOKU_LOG_ROOT "
            "to a folder every server and the loop share (docs/log.md)."
        )
    return found


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
