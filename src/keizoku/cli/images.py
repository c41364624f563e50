"""Images in the CLI: ``keizoku train`` on a spec with an ``images:`` section (the CNN's
trials, its hold-out accuracy, gates) and ``keizoku explain REF --image FILE`` (each
pixel's attribution; ``--overlay`` writes it as a PNG heat map over the image)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from keizoku.cli import _io

__all__ = ["explain_image", "train_images"]


def train_images(config: Path, overrides: dict[str, Any], as_json: bool, started: float) -> None:
    """Train, register and gate the image CNN (keizoku.deep.loop); print the result."""
    from keizoku.cli import _print_admission
    from keizoku.deep.loop import train_images_gated

    lines = not (_io.console.is_terminal and _io.err.is_terminal)
    with _EpochLog(started, lines) as log:
        outcome, admission = train_images_gated(config, overrides=overrides, on_epoch=log.epoch)
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


class _EpochLog:
    """The CNN's progress: a live bar per trial on a terminal, else one flushed line per
    epoch on stderr (CI logs, ``| cat``, nohup)."""

    def __init__(self, started: float, lines: bool) -> None:
        self.started, self.lines = started, lines
        self.progress: Any = None
        self.bars: dict[int, Any] = {}

    def __enter__(self) -> _EpochLog:
        if not self.lines:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), console=_io.err, transient=True,
            )  # fmt: skip
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def epoch(self, trial: int, channels: int, epoch: int, most: int, train: float,
              val: float | None) -> None:  # fmt: skip
        loss = f"train loss {train:.4f}" + (f" · val loss {val:.4f}" if val is not None else "")
        what = f"trial {trial + 1} ({channels} channels)"
        if self.lines:
            now = time.monotonic() - self.started
            print(f"[{now:7.1f}s] {what} epoch {epoch}/{most}: {loss}", file=sys.stderr, flush=True)
            return
        if trial not in self.bars:
            self.bars[trial] = self.progress.add_task(what, total=most, loss="")
        self.progress.update(self.bars[trial], completed=epoch, loss=loss)


def explain_image(ref: str, image: Path, overlay: Path | None, as_json: bool) -> None:
    """Explain one image's prediction (keizoku.evaluation.image_explain); print or emit JSON."""
    from keizoku.errors import DataError
    from keizoku.serving.image_routes import check_image, explain_images_ref

    if not image.is_file():
        raise DataError(f"No image file at '{image}': give --image the path of a PNG or JPEG.")
    files = [(str(image), image.read_bytes())]
    check_image(*files[0])
    result = explain_images_ref(ref, files)
    one = result["explanations"][0]
    if overlay is not None:
        from keizoku.data.images import load_image
        from keizoku.evaluation.report import write_overlay
        from keizoku.registry.models import load_model

        model: Any = load_model(f"{result['model']}:{result['version']}")
        pixels = load_image(image.read_bytes(), model.size, name=str(image), colour=model.colour)
        write_overlay(overlay, pixels, one["attribution"])
        result["overlay"] = str(overlay)
    if as_json:
        _io.emit_json(result)
        return
    focus = one["focus"]
    h, w = len(one["attribution"]), len(one["attribution"][0])
    _io.console.print(
        f"{result['model']}:{result['version']} predicts [bold]{one['prediction']!r}[/] "
        f"(p {one['probabilities'][one['prediction']]:.3f}) for {image.name}"
    )
    if focus["top_share"] is None:
        _io.console.print("No pixel argues for the prediction (no positive attribution).")
    else:
        row, col = focus["centre"]
        _io.console.print(
            f"The evidence for it: the top 10 % of pixels hold {focus['top_share']:.0%} of "
            f"the positive attribution, centred at row {row:.1f}, column {col:.1f} of {h}x{w}."
        )
    _io.console.print(f"method: {result['method']}")
    if overlay is not None:
        _io.console.print(f"Wrote the heat map over the image to [bold]{overlay}[/]")
