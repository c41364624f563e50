"""CLI commands of keizoku.lifecycle (registered on the main app by keizoku.cli.register)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io
from keizoku.cli.rollout import WaitTimeout

Config = Annotated[Path, typer.Option("--config", "-c", help="Spec with a retraining: section.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _console() -> Any:
    return _io.console


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why (written to the audit log).")] = "",
    force: Annotated[
        bool, typer.Option(help="Override a refusing gate; needs --reason (audited).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Spec (gates, fairness limits, data).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Labelled file to gate a never-gated version on (else the spec's data)."),
    ] = None,
    wait_timeout: WaitTimeout = None,
    as_json: AsJson = False,
) -> None:
    """Make VERSION the champion (the previous one is remembered for rollback).

    The version must have passed its gates (a never-gated one is gated now), match its
    recorded hashes and have its evidence. The actor is the OS user. An active experiment
    is ended consistently (or the promotion refused), then the live servers are awaited.
    """
    from keizoku.cli.rollout import wait_and_report, wait_seconds
    from keizoku.lifecycle.experiments import promote as do_promote  # keeps deployments right
    from keizoku.names import check_name
    from keizoku.spec import spec_path

    check_name(name)
    asked = wait_seconds(wait_timeout)
    entry = do_promote(name, version, reason=reason, force=force, spec=spec_path(config), data=data)
    if as_json:
        _io.emit_json(entry)
        wait_and_report(name, asked=asked)
        return
    forced = " (forced past the gate)" if entry["forced"] else ""
    _console().print(
        f"Promoted {name}:{version} to champion{forced}; previous champion: "
        f"{entry['previous']}. Undo with `keizoku rollback {name}`."
    )
    wait_and_report(name, asked=asked)


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why (written to the audit log).")] = "",
    wait_timeout: WaitTimeout = None,
    as_json: AsJson = False,
) -> None:
    """Restore the champion from before the last promotion (refused if its files changed)."""
    from keizoku.cli.rollout import wait_and_report, wait_seconds
    from keizoku.lifecycle.experiments import rollback as do_rollback  # ends an experiment
    from keizoku.names import check_name

    check_name(name)
    asked = wait_seconds(wait_timeout)
    entry = do_rollback(name, reason=reason)
    if as_json:
        _io.emit_json(entry)
        wait_and_report(name, asked=asked)
        return
    _console().print(
        f"Rolled back {name}: champion is version {entry['version']} again "
        f"(was {entry['previous']})."
    )
    wait_and_report(name, asked=asked)


def _evidence_text(entry: dict[str, Any]) -> str:
    ev = entry.get("evidence") or {}
    bits = []
    if ev.get("status"):
        bits.append(str(ev["status"]))
    move = ev.get("transition")
    if isinstance(move, dict):
        bits.append(f"{move.get('from')} → {move.get('to')}")
    gates: dict[str, Any] = ev["gates"] if isinstance(ev.get("gates"), dict) else {}
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
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the hash chain; exit 5 if an entry changed.")
    ] = False,
) -> None:
    """The audit log of NAME: registrations, gates, promotions, rollbacks, retrains, A/B."""
    from keizoku.audit import read
    from keizoku.audit import verify as verify_log
    from keizoku.names import check_name

    check_name(name)
    if verify:
        n = verify_log(name)
        if as_json:
            _io.emit_json({"model": name, "entries": n, "intact": True})
            return
        _console().print(f"Audit log of {name}: {n} entries, hash chain intact.")
        return
    entries = read(name)[-limit:]
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e, default=str))
        return
    table = _io.table(
        f"History of {name}",
        ["time (UTC)", "action", "version", "previous", "actor", "reason", "evidence"],
    )
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
    console.print(f"Triggers: {'; '.join(map(str, outcome.triggers))}")
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Run the retraining policy once: triggers, training window, warm start, gates.

    Exit 6 when the new version fails its gates (it then receives no traffic).
    """
    from keizoku.errors import GateError
    from keizoku.lifecycle.retrain import retrain as do_retrain
    from keizoku.names import check_name

    check_name(name)
    outcome = do_retrain(name, config, force=force)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), default=str))
    else:
        _print_outcome(outcome)
    if outcome.status == "failed":
        raise GateError(
            f"{name}:{outcome.version} failed its gates: "
            f"{'; '.join(r.rstrip('.') for r in outcome.reasons)}. It is "
            "kept for inspection (keizoku.gate=failed) and receives no traffic."
        )


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("history")(history)
    app.command("retrain")(retrain)
