"""``keizoku export``: a registered version as an ONNX edge bundle (docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io
from keizoku.errors import UserInputError

__all__ = ["export", "register"]


def export(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME:version.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle folder to write.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Rows for the parity check (default: the project's data; an image "
            "project's hold-out images).",
        ),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option("--quantize", help="int8: quantized weights (linear models, image CNN)."),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Largest difference the parity check allows (default 1e-5, 1e-4 with a "
            "neural member; 0 to 1e-2).",
        ),
    ] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="Project spec.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a model as an edge bundle: one ONNX graph, schema, labels, card, sha256
    manifest and a runner needing only onnxruntime + numpy, after a parity check."""
    from keizoku.cli._read import model_name
    from keizoku.export import export_onnx

    if fmt != "onnx":
        raise UserInputError(f"--format {fmt!r} is not supported; the only format is onnx.")
    frame = _parity_rows(model_name(ref), data, config)
    result = export_onnx(ref, output, frame, quantize=quantize, tolerance=tolerance)
    if as_json:
        _io.emit_json(result.to_dict())
        return
    p = result.parity
    check = (
        f"agreement {p.agreement:.2%} after int8" if p.quantize else
        f"max |Δ| {p.max_abs_diff:.2g} ≤ {p.tolerance:g}, labels equal {p.labels_equal}/{p.rows}"
    )  # fmt: skip
    _io.console.print(
        f"Exported [bold]{result.name}:{result.version}[/] to [bold]{result.folder}[/] "
        f"({result.size_bytes / 1024:.0f} KiB); parity on {p.rows} rows: {check}. "
        f"Run it: cd {result.folder} && python -m runner RECORD.json",
        highlight=False,
    )


def _parity_rows(model: str, data: str | None, config: str | None) -> Any:
    """The rows the parity check scores: --data, else the project's data for ``model``."""
    from keizoku.data.ingest import read_table
    from keizoku.spec import project_read_options, spec_path

    if data is not None:
        return read_table(data, project_read_options(model, config))
    path = spec_path(config)
    if path is not None and path.exists():
        from keizoku.project import load_training_data
        from keizoku.spec import load_spec

        spec, base = load_spec(path)
        if spec.project == model and spec.images is not None:
            return _holdout_images(spec, base)
        if spec.project == model:
            return load_training_data(spec, base)[0]
    raise UserInputError(
        f"No rows for the parity check of '{model}': run in its project's folder (its "
        "keizoku.yaml names the data) or pass --data FILE with rows like the training data."
    )


def _holdout_images(spec: Any, base: Path) -> Any:
    """An image project's hold-out images (all its images when it keeps none out), as a
    table with the model's path column."""
    from keizoku.deep.images import image_table
    from keizoku.deep.loop import holdout_mask

    ims = spec.images
    source = Path(spec.data.path or ".")
    table = image_table(source if source.is_absolute() else base / source, ims, spec.target)
    held = holdout_mask(table, ims.holdout)
    rows = table[held] if held.any() else table
    return rows.rename(columns={"path": ims.path_column})


def register(app: typer.Typer) -> None:
    """Add ``export`` to the main app."""
    app.command("export")(export)
