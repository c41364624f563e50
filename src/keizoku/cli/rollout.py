"""CLI commands that decide who answers traffic: ``deploy``, ``status``, ``abtest``, ``loop``.

A thin shell over ``keizoku.lifecycle.experiments`` (deployments, experiments),
``keizoku.lifecycle.canary``, ``keizoku.lifecycle.loop`` and ``keizoku.lifecycle.servers``.
After a change of who answers, the command waits (bounded) until every live server
reports the new versions and names those that do not (exit 8).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io

Config = Annotated[Path, typer.Option("--config", "-c", help="Spec with a retraining: section.")]


def _console() -> Any:
    return _io.console


def _policy(config: Path) -> Any:
    from keizoku.lifecycle.policy import parse_policy
    from keizoku.spec import load_spec, spec_path

    path = spec_path(config)
    if path is None or not path.exists():
        return parse_policy(None)
    return parse_policy(load_spec(path)[0].retraining)


WaitTimeout = Annotated[
    str | None,
    typer.Option(
        help="How long to wait for the live servers (20s, 2m). Default: three heartbeat "
        "intervals of the slowest, 15 s to 60 s; never under two intervals + 1 s."
    ),
]


def wait_seconds(wait_timeout: str | None) -> float | None:
    """``--wait-timeout`` in seconds (None: the default bound), read before anything changes."""
    from keizoku.duration import parse_duration

    return None if wait_timeout is None else parse_duration(wait_timeout, what="--wait-timeout")


def wait_and_report(name: str, *, wait: bool = True, asked: float | None = None) -> None:
    """Wait until the live servers serve what the registry says; exit 8 naming any that don't.

    ``asked`` (``--wait-timeout``, seconds) is raised to ``servers.wait_floor``, saying so.
    """
    from keizoku.errors import ConflictError
    from keizoku.lifecycle.servers import servers_of, wait_bound, wait_floor, wait_for_servers

    if not wait:
        return
    serving = servers_of(name)
    bound = wait_bound(serving, asked)
    if asked is not None and bound > asked:
        typer.echo(f"--wait-timeout {asked:g} s is raised to {bound:g} s: the slowest live "
                   f"server of '{name}' needs {wait_floor(serving):g} s to poll once and "
                   "report it.", err=True)  # fmt: skip
    expected, beats, late = wait_for_servers(name, timeout_s=bound)
    if not beats:
        typer.echo(f"No live server serves '{name}' (no heartbeat in KEIZOKU_HOME/servers).",
                   err=True)  # fmt: skip
        return
    if late:
        who = "; ".join(f"{b.label} serves {served}" for b, served in late)
        raise ConflictError(
            f"{len(late)} of {len(beats)} live server(s) of '{name}' still do not serve "
            f"{expected} after {bound:g} s: {who}. Check their logs (a refused swap keeps the "
            f"old version) and `keizoku status {name}`; --wait-timeout waits longer."
        )
    typer.echo(f"All {len(beats)} live server(s) of '{name}' serve {expected}.", err=True)


def deploy(
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
    canary: Annotated[
        float | None,
        typer.Option(help="Send this % to the challenger, stepping up (retraining.rollout)."),
    ] = None,
    canary_step: Annotated[
        bool, typer.Option("--canary-step", help="Judge the running canary once (for cron).")
    ] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Back to champion-only.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until live servers serve it.")] = True,
    wait_timeout: WaitTimeout = None,
    config: Config = Path("keizoku.yaml"),
    reason: Annotated[str, typer.Option(help="Why (written to the audit log).")] = "",
) -> None:
    """Route a model's traffic: A/B split, shadow or canary, pinned to gated versions."""
    from keizoku.lifecycle import canary as canaries
    from keizoku.lifecycle.deployment import parse_split
    from keizoku.lifecycle.experiments import deploy as do_deploy

    asked = wait_seconds(wait_timeout)
    if canary_step:
        step = canaries.step(name, _policy(config).rollout, actor=None)
        typer.echo(json.dumps(step.to_dict(), default=str))
        wait_and_report(name, wait=wait and step.action not in ("none", "waiting"), asked=asked)
        return
    if canary is not None:
        started = canaries.start(name, canary, _policy(config).rollout, actor=None)
        typer.echo(json.dumps(started.model_dump(), indent=2, default=str))
        wait_and_report(name, wait=wait, asked=asked)
        return
    dep, exp = do_deploy(
        name, split=parse_split(split) if split is not None else None, shadow=shadow,
        sticky_key=sticky_key, entity_key=entity_key, reset=reset, actor=None, reason=reason,
    )  # fmt: skip
    typer.echo(json.dumps(dep.model_dump(), indent=2, default=str))
    if exp is not None:
        typer.echo(
            f"Experiment {exp.id}: v{exp.control.version} (champion) vs v{exp.treatment.version} "
            f"({exp.treatment.alias}), {exp.kind}, from {time.ctime(exp.started)}.", err=True
        )  # fmt: skip
    elif reset:
        typer.echo(f"{name}: champion answers every request (deployment reset).", err=True)
    wait_and_report(name, wait=wait, asked=asked)


def status(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Registry aliases and deployment vs what each live server serves (exit 8 if any differ)."""
    from keizoku.lifecycle.deployment import load_deployment
    from keizoku.lifecycle.experiments import active_experiment
    from keizoku.lifecycle.servers import disagreements, expected_variants, live_beats
    from keizoku.names import check_name
    from keizoku.registry.models import list_versions

    check_name(name)
    versions = list_versions(name)
    aliases = {a: v.version for v in versions for a in v.aliases}
    dep = load_deployment(name)
    exp = active_experiment(name)
    expected = expected_variants(name)
    beats = [b for b in live_beats(prune=True) if b.variants(name) is not None]
    late = {b.label: served for b, served in disagreements(name, beats, expected)}
    data = {
        "model": name, "aliases": aliases, "deployment": dep.model_dump(),
        "experiment": exp.model_dump() if exp else None, "expected": expected,
        "servers": [{**b.to_dict(), "serves": b.variants(name), "agrees": b.label not in late}
                    for b in beats],
        "agree": not late,
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        _print_status(name, aliases, expected, exp, beats, late)
    if late:
        raise typer.Exit(8)


def _print_status(
    name: str, aliases: dict[str, int], expected: dict[str, int], exp: Any, beats: list[Any],
    late: dict[str, dict[str, int]],
) -> None:  # fmt: skip
    c = _console()
    c.print(f"{name}: registry aliases {aliases}; should serve {expected}")
    if exp is not None:
        c.print(f"experiment {exp.id} ({exp.kind}): v{exp.control.version} vs "
                f"v{exp.treatment.version}, split {exp.split}")  # fmt: skip
    if not beats:
        c.print("No live server serves it.")
    for b in beats:
        mark = "[bold red]DISAGREES[/]" if b.label in late else "[green]agrees[/]"
        c.print(f"  {b.label}: serves {b.variants(name)} {mark}")
    if late:
        c.print(f"{len(late)} server(s) disagree with the registry.")


def abtest(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    metric: Annotated[
        str | None,
        typer.Option(help="accuracy (rate), label (mean outcome), abs_error, squared_error."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment id (default: the active one).")
    ] = None,
    control: Annotated[str, typer.Option(help="Control alias without an experiment.")] = (
        "champion"
    ),
    treatment: Annotated[str, typer.Option(help="Treatment alias without an experiment.")] = (
        "challenger"
    ),
    since: Annotated[str | None, typer.Option(help="Only traffic in this window, e.g. 7d.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    mde: Annotated[float | None, typer.Option(help="Minimum detectable effect.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A/B verdict of the experiment's two versions since it started: effect, CI, decision."""
    from keizoku import audit
    from keizoku.duration import parse_duration
    from keizoku.lifecycle.abtest import abtest as run_abtest

    window = time.time() - parse_duration(since) if since else None
    r = run_abtest(
        name, metric=metric, control=control, treatment=treatment, since=window, alpha=alpha,
        mde=mde, experiment=experiment,
    )  # fmt: skip
    audit.record(
        name, "abtest", actor=None, reason=r.why, version=r.treatment_version,
        previous=r.control_version, evidence=r.to_dict(),
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(r.to_dict(), default=str))
        return
    c = _console()
    exp = r.experiment or "none"
    c.print(f"A/B test of {name}: {r.treatment} v{r.treatment_version} vs {r.control} "
            f"v{r.control_version} on {r.metric} (experiment {exp})")  # fmt: skip
    c.print(f"  method: {r.method}; fixed-horizon {r.fixed_test} p = {r.fixed_p_value:.3g} "
            "(for reference: not valid under repeated looks)")  # fmt: skip
    c.print(f"  {r.control}: {r.mean_control:.4f} (n={r.n_control})   "
            f"{r.treatment}: {r.mean_treatment:.4f} (n={r.n_treatment})")  # fmt: skip
    c.print(f"  effect {r.effect:+.4f}, {1 - r.alpha:.0%} always-valid CI "
            f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}], p = {r.p_value:.3g}")  # fmt: skip
    if r.decision == "continue":
        c.print(f"  about {r.needed_per_arm} more labelled outcomes per arm needed "
                f"(to detect {r.mde:g} with power 0.8)")  # fmt: skip
    c.print(f"Decision: [bold]{r.decision}[/] — {r.why}")


def loop(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    config: Config = Path("keizoku.yaml"),
    every: Annotated[
        str | None, typer.Option(help="Check interval (default: retraining.check_every).")
    ] = None,
    once: Annotated[
        bool, typer.Option(help="One tick; exit 6 gate failed, 10 drift, 11 metric drop.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print each tick as JSON.")] = False,
) -> None:
    """Run the retraining policy and the rollout on a schedule until SIGTERM/SIGINT."""
    from keizoku.duration import parse_duration
    from keizoku.lifecycle.loop import Tick, run
    from keizoku.names import check_name

    check_name(name)
    interval = parse_duration(every or _policy(config).check_every)
    stop = threading.Event()
    got: list[int] = []

    def _stop(signum: int, _frame: Any) -> None:
        got.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console = _console()

    def report(t: Tick) -> None:
        if as_json:
            typer.echo(json.dumps(t.to_dict(), default=str))
            return
        for line in t.rollout:
            console.print(f"rollout: {line}")
        for line in t.log:
            console.print(f"log: {line}")
        if t.error:
            console.print(f"[red]tick failed:[/] {t.error}")
        else:
            what = f"v{t.version} {t.retrain}" if t.version else t.retrain
            console.print(f"retrain: {what}; {'; '.join([*map(str, t.triggers), *t.reasons])}")

    if not once:
        console.print(f"keizoku loop {name}: checking every {interval:g}s (SIGTERM to stop)")
    last = run(name, config, interval_s=interval, stop=stop, actor=_loop_actor(),
               once=once, report=report)  # fmt: skip
    if once:
        raise typer.Exit(last.code)
    console.print("keizoku loop stopped.")
    if got:
        raise typer.Exit(130 if got[0] == signal.SIGINT else 143)


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("deploy")(deploy)
    app.command("status")(status)
    app.command("abtest")(abtest)
    app.command("loop")(loop)


def _loop_actor() -> str:
    """The loop acts as the OS user that runs it, marked as the loop."""
    from keizoku.audit import default_actor

    return f"loop:{default_actor()}"
