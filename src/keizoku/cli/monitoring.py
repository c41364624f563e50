"""CLI commands of keizoku.monitoring (registered on the main app by keizoku.cli.register)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io
from keizoku.cli import _read as rf


def feedback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV/Parquet/JSON(L) with request_id and/or entity_id, label, optional ts."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Store true labels for earlier predictions; report rejected rows (exit 2 if any).

    For a forecasting model FILE holds the periods that came true (the id columns, the
    time column, the target), joined to the logged forecasts of those periods.
    """
    from keizoku.forecast.monitor import is_forecast, record_actuals
    from keizoku.monitoring.feedback import read_feedback_file, store_feedback
    from keizoku.names import check_name

    check_name(name)
    if is_forecast(name):  # forecasting: actuals by series and period (keizoku.forecast)
        from keizoku.data.ingest import read_table

        report = record_actuals(name, read_table(str(file), None))
    else:
        report = store_feedback(name, read_feedback_file(file), partial=True)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), default=str))
    else:
        console = _io.console
        console.print(f"Stored {report.stored} labels for '{name}'.")
        if report.rejected:
            console.print(f"Rejected {len(report.rejected)} record(s), not stored:")
        for r in report.rejected[:50]:
            console.print(f"  record {r.record}: {r.reason}", markup=False)
        if len(report.rejected) > 50:
            console.print(f"  ... and {len(report.rejected) - 50} more (see --json)")
    if report.rejected:
        raise typer.Exit(2)


def _spec_monitoring(config: Path | None) -> dict[str, Any]:
    from keizoku.spec import load_spec, spec_path

    path = spec_path(config)
    if path is None:
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
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write a self-contained HTML report.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", hidden=True)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Spec with a monitoring: section.")
    ] = None,
    multivariate: Annotated[
        bool | None,
        typer.Option(
            "--multivariate/--no-multivariate",
            help="Run the domain classifier (default: the spec's monitoring.multivariate, on).",
        ),
    ] = None,
    from_rows: Annotated[
        bool,
        typer.Option(
            "--from-rows",
            help="Count drift from the logged rows, not the hourly/daily pre-aggregates.",
        ),
    ] = False,
    header: rf.Header = None,
    names: rf.Names = None,
    sep: rf.Sep = None,
    na_values: rf.NaValues = None,
    encoding: rf.Encoding = None,
    allow_ragged_rows: rf.Ragged = None,
    allow_duplicate_columns: rf.Duplicates = None,
) -> None:
    """Drift and live metric; exit 10 when drift is found, 11 when the live metric dropped.

    --data is read with the project spec's read keys (data.header, names, …); flags override.
    """
    from keizoku.duration import parse_duration
    from keizoku.forecast.monitor import is_forecast
    from keizoku.monitoring.monitor import drift_config
    from keizoku.monitoring.monitor import monitor as run_monitor
    from keizoku.spec import project_read_options

    if data is None and is_forecast(name):  # forecasting: the live error of its forecasts
        from keizoku.cli.forecast import monitor_forecast

        return monitor_forecast(name, version, as_json)
    cfg = drift_config(_spec_monitoring(config))
    if multivariate is not None:
        cfg = cfg.model_copy(update={"multivariate": multivariate})
    window = parse_duration(since or cfg.window)
    flags = rf.ReadFlags(header, names, sep, na_values, encoding, allow_ragged_rows,
                         allow_duplicate_columns)  # fmt: skip
    read = rf.read_options(project_read_options(name, config), flags) if data else None
    report = run_monitor(
        name, version=version, since_s=window, data=data, config=cfg, read=read, rows=from_rows
    )
    console = _io.console
    html = output or html
    if html is not None:
        from keizoku.monitoring.report import write_html

        write_html(report, html)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), default=str))
        _exit_code(report, _metric_drop_limit(config))
        return
    table = _io.table(
        f"Drift of {name} v{report.version}: {report.n_rows:,} rows ({report.source})",
        ["feature", "kind", "test", "p-value", "distance", "PSI", "nulls", "", "why"],
        right=("p-value", "distance", "PSI", "nulls", ""),
    )
    rows = report.features + ([report.prediction] if report.prediction else [])
    for f in rows:
        table.add_row(
            f.feature,
            f.kind,
            f.test,
            f"{f.p_value:.2g}",
            f"{f.distance:.3f}",
            f"{f.psi:.3f}",
            f"{f.null_rate_ref:.0%}→{f.null_rate_cur:.0%}",
            "[bold red]DRIFT[/]"
            if f.drifted
            else ("[yellow]too few rows[/]" if f.n < cfg.min_rows else "[green]ok[/]"),
            f.reason,
        )
    console.print(table)
    if report.n_rows < cfg.min_rows:
        console.print(
            f"[yellow]Only {report.n_rows:,} row{'' if report.n_rows == 1 else 's'} in the "
            "window: drift is judged from "
            f"{cfg.min_rows} rows on (monitoring.min_rows). Widen --since or send more traffic.[/]"
        )
    if report.performance is not None:
        p = report.performance
        console.print(
            f"Live {p.metric}: {p.live:.4f} on {p.n_labels:,} labels "
            f"(training CV {p.training:.4f}, drop {p.drop:+.4f})"
        )
    from keizoku.monitoring.monitor import summary_lines

    for line in summary_lines(report):
        console.print(line, markup=False)
    if html is not None:
        console.print(f"Wrote {html}")
    _exit_code(report, _metric_drop_limit(config))


def _metric_drop_limit(config: Path | None) -> float | None:
    """``retraining.triggers.metric_drop`` of the spec (0.05 without one)."""
    from keizoku.lifecycle.policy import parse_policy
    from keizoku.spec import load_spec, spec_path

    path = spec_path(config)
    if path is None or not path.exists():
        return parse_policy(None).triggers.metric_drop
    return parse_policy(load_spec(path)[0].retraining).triggers.metric_drop


def _exit_code(report: Any, limit: float | None) -> None:
    """10 when a feature drifted, else 11 when the live metric dropped by the limit or more."""
    from keizoku.errors import ExitCode

    if report.any_drift:
        raise typer.Exit(int(ExitCode.DRIFT))
    p = report.performance
    if p is not None and limit is not None and p.drop == p.drop and p.drop >= limit:
        raise typer.Exit(int(ExitCode.METRIC_DROP))


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("feedback")(feedback)
    app.command("monitor")(monitor)
