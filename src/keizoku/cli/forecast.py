"""``keizoku train`` on a forecasting spec (``task: forecast``): leaderboard, coverage, gates."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from keizoku.cli import _io

__all__ = ["train_forecast"]


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
    _print_admission(outcome.name, outcome.version, admission)
