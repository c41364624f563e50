"""Forecasting in the CLI: ``keizoku train`` on a ``task: forecast`` spec (leaderboard,
coverage, gates) and ``keizoku forecast-error`` (the live error of logged forecasts)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io

__all__ = ["forecast_error", "monitor_forecast", "register", "train_forecast"]


def train_forecast(config: Path, overrides: dict[str, Any], as_json: bool, started: float) -> None:
    """Train, register and gate a forecaster (keizoku.forecast.loop); print the result."""
    from keizoku.cli import _print_admission
    from keizoku.forecast.loop import train_forecast_gated

    outcome, admission = train_forecast_gated(config, overrides=overrides, started=started)
    res, info = outcome.result, outcome.result.model.info
    if as_json:
        body = {
            "model": outcome.name, "version": outcome.version, "task": "forecast",
            "state": admission.state, "metric": "mase", "cv_score": res.cv_score,
            "coverage": res.coverage, "level": info["level"], "horizon": info["horizon"],
            "frequency": info["frequency"], "best": info["family"],
            "leaderboard": res.leaderboard.to_dict(orient="records"),
            "not_run": info.get("not_run", []),
            "gates": admission.gates.to_dict() if admission.gates else None,
            "wall_s": time.monotonic() - started,
        }  # fmt: skip
        typer.echo(json.dumps(body, default=str))
        _print_admission(outcome.name, outcome.version, admission, quiet=True)
        return
    table = _io.table(
        f"Forecasters (time-ordered CV: {info['folds']} {info['scheme']} fold(s) of "
        f"{info['horizon']} × {info['frequency']}, gap {info['gap']})",
        ["model", "MASE", "MAE", "RMSE", f"coverage @{info['level']:g}", "fit s"],
    )
    for row in res.leaderboard.to_dict(orient="records"):
        table.add_row(
            str(row["model"]), f"{row['mase']:.4f}", f"{row['mae']:.4g}", f"{row['rmse']:.4g}",
            f"{row['coverage']:.3f}", f"{row['fit_time_s']:.1f}",
        )  # fmt: skip
    _io.console.print(table)
    _io.console.print(
        f"Best: [bold]{info['family']}[/] · CV MASE {res.cv_score:.4f} (seasonal naive "
        f"{info['seasonal_naive_mase']:.4f}) · interval coverage {res.coverage:.3f} at "
        f"{info['level']:g} (cross-conformal)"
    )
    if info.get("not_run"):
        _io.console.print(
            f"Not run within the budget: {', '.join(info['not_run'])}. Raise --budget (or "
            "train.budget) to compare them too."
        )
    _print_admission(outcome.name, outcome.version, admission)


def _print_live(name: str, report: dict[str, Any], where: str) -> None:
    if not report["matched"]:
        _io.console.print(
            f"{name}: none of {report['logged']} logged forecast period(s) has an actual "
            f"{where} (matched on the series ids and the time column)."
        )
        return
    coverage = (
        f" · coverage {report['coverage']:.3f} at {report['level']:g} (CV "
        f"{report['cv_coverage']:.3f})" if report["coverage"] is not None else ""
    )  # fmt: skip
    _io.console.print(
        f"{name}: {report['matched']} of {report['logged']} logged forecast period(s) have an "
        f"actual · MAE {report['mae']:.4g} · RMSE {report['rmse']:.4g} · MASE "
        f"{report['mase']:.4f} (CV MASE {report['cv_mase']:.4f}){coverage}"
    )
    if report["mae_by_step"]:
        steps = ", ".join(f"{k}: {v:.4g}" for k, v in report["mae_by_step"].items())
        _io.console.print(f"MAE by horizon step: {steps}")


def forecast_error(
    name: Annotated[str, typer.Argument(help="Forecasting model name.")],
    actuals: Annotated[
        str, typer.Argument(help="File of the periods that came true: ids, time, target.")
    ],
    version: Annotated[
        int | None, typer.Option(help="Version whose spec applies (default: the champion).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """The live error of NAME's logged forecasts against ACTUALS (MAE, RMSE, MASE by step)."""
    from keizoku.data.ingest import read_table
    from keizoku.forecast.monitor import forecast_error as live_error

    report = live_error(name, read_table(actuals, None), version=version)
    if as_json:
        _io.emit_json(report)
        return
    _print_live(name, report, f"in {actuals}")


def monitor_forecast(name: str, version: int | None, as_json: bool) -> None:
    """``keizoku monitor`` on a forecasting model: the live error of its logged forecasts
    against the actuals stored with ``keizoku feedback``; exit 11 when the live MASE
    exceeds the CV MASE by more than ``keizoku.forecast.loop.LIVE_TOLERANCE``."""
    from keizoku.errors import ExitCode
    from keizoku.forecast.loop import LIVE_TOLERANCE
    from keizoku.forecast.monitor import forecast_error as live_error

    report = live_error(name, version=version)
    worse = bool(report["matched"]) and report["mase"] > report["cv_mase"] * (1 + LIVE_TOLERANCE)
    report["metric_drop"] = worse
    if as_json:
        _io.emit_json(report)
    else:
        _print_live(name, report, "yet (send them with `keizoku feedback NAME ACTUALS`)")
        if worse:
            _io.console.print(
                f"The live MASE exceeds the CV MASE by more than {LIVE_TOLERANCE:.0%}: "
                f"`keizoku retrain {name}` will retrain."
            )
    if worse:
        raise typer.Exit(int(ExitCode.METRIC_DROP))


def register(app: typer.Typer) -> None:
    """Add ``forecast-error`` to the main app."""
    app.command("forecast-error")(forecast_error)
