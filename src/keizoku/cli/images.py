"""Images in the CLI: ``keizoku train`` on a spec with an ``images:`` section (the CNN's
trials, its hold-out accuracy, gates)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from keizoku.cli import _io

__all__ = ["train_images"]


def train_images(config: Path, overrides: dict[str, Any], as_json: bool, started: float) -> None:
    """Train, register and gate the image CNN (keizoku.deep.loop); print the result."""
    from keizoku.cli import _print_admission
    from keizoku.deep.loop import train_images_gated

    outcome, admission = train_images_gated(config, overrides=overrides)
    info = outcome.model.info
    if as_json:
        body = {
            "model": outcome.name, "version": outcome.version, "task": outcome.model.task,
            "input": "images", "state": admission.state, "metric": "accuracy",
            "cv_score": info["val_accuracy"], "holdout_accuracy": outcome.holdout_accuracy,
            "classes": outcome.model.classes, "trials": outcome.trials,
            "gates": admission.gates.to_dict() if admission.gates else None,
            "wall_s": time.monotonic() - started,
        }  # fmt: skip
        typer.echo(json.dumps(body, default=str))
        _print_admission(outcome.name, outcome.version, admission, quiet=True)
        return
    table = _io.table("Image CNN trials", ["channels", "val accuracy", "best epoch", "fit s"])
    for t in outcome.trials:
        table.add_row(str(t["channels"]), f"{t['val_accuracy']:.4f}", str(t["epochs"]),
                      f"{t['fit_time_s']:.1f}")  # fmt: skip
    _io.console.print(table)
    _io.console.print(
        f"Best: [bold]image_cnn[/] ({info['channels']} channels) · validation accuracy "
        f"{info['val_accuracy']:.4f} · hold-out accuracy {outcome.holdout_accuracy:.4f} "
        f"on {info['holdout_rows']} image(s)"
    )
    _print_admission(outcome.name, outcome.version, admission)
