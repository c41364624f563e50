"""CLI commands of keizoku.lifecycle (registered on the main app by keizoku.cli.register)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

Config = Annotated[Path, typer.Option("--config", "-c", help="Spec with a retraining: section.")]
Actor = Annotated[
    str | None, typer.Option("--actor", help="Who acts (default: the OS user); audited.")
]


def _console() -> Any:
    from rich.console import Console

    return Console()


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why (written to the audit log).")] = "",
    force: Annotated[bool, typer.Option(help="Override a refusing gate (audited).")] = False,
    actor: Actor = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Spec (fairness limits).")
    ] = None,
) -> None:
    """Make VERSION the champion (the previous one is remembered for rollback)."""
    from keizoku.cli.rollout import wait_and_report
    from keizoku.lifecycle.experiments import promote as do_promote  # keeps deployments right

    entry = do_promote(name, version, actor=actor, reason=reason, force=force, spec=config)
    forced = " (forced past the gate)" if entry["forced"] else ""
    _console().print(
        f"Promoted {name}:{version} to champion{forced}; previous champion: "
        f"{entry['previous']}. Undo with `keizoku rollback {name}`."
    )
    wait_and_report(name)


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why (written to the audit log).")] = "",
    actor: Actor = None,
) -> None:
    """Restore the champion from before the last promotion."""
    from keizoku.cli.rollout import wait_and_report
    from keizoku.lifecycle.experiments import rollback as do_rollback  # ends an experiment

    entry = do_rollback(name, actor=actor, reason=reason)
    _console().print(
        f"Rolled back {name}: champion is version {entry['version']} again "
        f"(was {entry['previous']})."
    )
    wait_and_report(name)


def _evidence_text(entry: dict[str, Any]) -> str:
    ev = entry.get("evidence") or {}
    bits = []
    if ev.get("status"):
        bits.append(str(ev["status"]))
    gates = ev.get("gates") or {}
    for check in gates.get("checks", []):
        bits.append(f"{check['name']}:{'ok' if check['passed'] else 'FAIL'}")
    if ev.get("refusals"):
        bits.append(f"{len(ev['refusals'])} refusal(s)")
    if "decision" in ev:
        bits.append(f"{ev['decision']} (p={ev.get('p_value', float('nan')):.3g})")
    return ", ".join(bits)


def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    limit: Annotated[int, typer.Option(help="Show the last N entries.")] = 50,
) -> None:
    """The audit log of NAME: promotions, rollbacks, retrains, gates, A/B decisions."""
    from rich.table import Table

    from keizoku.lifecycle.audit import read

    entries = read(name)[-limit:]
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e, default=str))
        return
    table = Table(title=f"History of {name}")
    for col in ("time (UTC)", "action", "version", "previous", "actor", "reason", "evidence"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e["time"].replace("T", " ").rstrip("Z"),
            e["action"] + (" [red](forced)[/]" if e.get("forced") else ""),
            "" if e.get("version") is None else str(e["version"]),
            "" if e.get("previous") is None else str(e["previous"]),
            str(e.get("actor", "")),
            str(e.get("reason", ""))[:60],
            _evidence_text(e),
        )
    _console().print(table)
    if not entries:
        _console().print(f"No audit entries for '{name}' yet.")


def _print_outcome(outcome: Any) -> None:
    console = _console()
    if outcome.status == "skipped":
        console.print(f"Retrain of {outcome.model} skipped: {'; '.join(outcome.reasons)}")
        return
    console.print(f"Triggers: {'; '.join(outcome.triggers)}")
    console.print(f"Training rows: {outcome.rows}")
    for check in outcome.gates.checks:
        mark = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        console.print(f"  {mark} {check.name}: {check.detail}")
    if outcome.status == "passed":
        console.print(
            f"{outcome.model}:{outcome.version} passed its gates and is the challenger. "
            f"Promote it with `keizoku promote {outcome.model} {outcome.version}` or A/B test it."
        )
    else:
        console.print(
            f"{outcome.model}:{outcome.version} failed its gates: it is kept (tag "
            "keizoku.gate=failed) but is not the challenger."
        )


def retrain(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    config: Config = Path("keizoku.yaml"),
    force: Annotated[bool, typer.Option(help="Retrain even if no trigger fires.")] = False,
    actor: Actor = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Run the retraining policy once: triggers, training window, warm start, gates."""
    from keizoku.lifecycle.retrain import retrain as do_retrain

    outcome = do_retrain(name, config, force=force, actor=actor)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), default=str))
    else:
        _print_outcome(outcome)
    if outcome.status == "failed":
        raise typer.Exit(6)


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("history")(history)
    app.command("retrain")(retrain)
