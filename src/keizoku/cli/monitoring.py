"""CLI commands of keizoku.monitoring (registered on the main app by keizoku.cli.register)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.duration import parse_duration

# Deprecated alias: every duration is parsed by keizoku.duration.parse_duration.
parse_window = parse_duration


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


def _spec_monitoring(config: Path | None) -> dict[str, Any]:
    from keizoku.spec import load_spec

    path = config or Path("keizoku.yaml")
    if config is None and not path.exists():
        return {}
    spec, _ = load_spec(path)
    return dict(spec.monitoring)


def monitor(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    since: Annotated[
        str | None,
        typer.Option(help="Window of logged traffic, e.g. 24h, 7d (default: spec or 24h)."),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Compare this data file instead of logged traffic.")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Version whose reference to use (default: champion).")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Spec with a monitoring: section.")
    ] = None,
) -> None:
    """Drift per feature and of the predictions, and the live metric where labels arrived."""
    from rich.console import Console
    from rich.table import Table

    from keizoku.monitoring.monitor import drift_config
    from keizoku.monitoring.monitor import monitor as run_monitor

    cfg = drift_config(_spec_monitoring(config))
    window = parse_window(since or cfg.window)
    report = run_monitor(name, version=version, since_s=window, data=data, config=cfg)
    console = Console()
    if html is not None:
        from keizoku.monitoring.report import write_html

        write_html(report, html)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), default=str))
        return
    table = Table(
        title=f"Drift of {name} v{report.version}: {report.n_rows:,} rows ({report.source})"
    )
    for col in ("feature", "kind", "test", "stat", "p-value", "PSI", "distance", "nulls", ""):
        table.add_column(col, justify="left" if col in ("feature", "kind", "test") else "right")
    rows = report.features + ([report.prediction] if report.prediction else [])
    for f in rows:
        table.add_row(
            f.feature,
            f.kind,
            f.test,
            f"{f.statistic:.3f}",
            f"{f.p_value:.2g}",
            f"{f.psi:.3f}",
            f"{f.distance:.3f}",
            f"{f.null_rate_ref:.0%}→{f.null_rate_cur:.0%}",
            "[bold red]DRIFT[/]"
            if f.drifted
            else ("[yellow]too few rows[/]" if f.n < cfg.min_rows else "[green]ok[/]"),
        )
    console.print(table)
    if report.n_rows < cfg.min_rows:
        console.print(
            f"[yellow]Only {report.n_rows:,} rows in the window: drift is judged from "
            f"{cfg.min_rows} rows on (monitoring.min_rows). Widen --since or send more traffic.[/]"
        )
    if report.performance is not None:
        p = report.performance
        console.print(
            f"Live {p.metric}: {p.live:.4f} on {p.n_labels:,} labels "
            f"(training CV {p.training:.4f}, drop {p.drop:+.4f})"
        )
    drifted = report.drifted
    console.print(
        f"Drifted features: {', '.join(drifted)}" if drifted else "No feature drifted.",
        f"(p < {cfg.alpha:g} and PSI ≥ {cfg.psi_threshold:g}; {report.elapsed_s:.2f}s)",
    )
    if html is not None:
        console.print(f"Wrote {html}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("feedback")(feedback)
    app.command("monitor")(monitor)
