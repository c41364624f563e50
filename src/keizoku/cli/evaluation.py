"""CLI commands of keizoku.evaluation (registered on the main app by keizoku.cli.register).

``keizoku report REF [--data FILE] -o report.html``, ``keizoku explain REF --row JSON``
and ``keizoku evidence REF`` (the promotion gate's verdict, without promoting).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keizoku.cli import _io
from keizoku.cli import _read as rf

__all__ = ["register"]

Ref = Annotated[str, typer.Argument(help="Model: NAME, NAME@alias or NAME:version.")]
SpecOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Spec (fairness limits, read keys); default: the one found."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _spec(path: Path | None) -> Any:
    from keizoku.errors import UserInputError
    from keizoku.spec import load_spec, spec_path

    if path is None:
        path = spec_path()
        if path is None:
            return None
    if not path.exists():
        raise UserInputError(
            f"No spec at '{path}'. Pass --config PATH to an existing keizoku.yaml."
        )
    return load_spec(path)[0]


def _row(row: str | None, row_file: Path | None) -> dict[str, Any]:
    from keizoku.errors import UserInputError

    if (row is None) == (row_file is None):
        raise UserInputError(
            "Give exactly one of --row '{\"col\": value, ...}' or --row-file FILE.json."
        )
    text = row if row is not None else Path(str(row_file)).read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(
            f"The row is not valid JSON ({exc.msg} at character {exc.pos}). "
            "Quote it in the shell: --row '{\"Age\": 22}'."
        ) from exc
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        raise UserInputError('The row must be one JSON object, e.g. {"Age": 22, "Sex": "male"}.')
    return value


def report(
    ref: Ref,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    data: Annotated[
        str | None, typer.Option("--data", help="Labelled file to evaluate the model on.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", hidden=True)] = None,
    config: SpecOpt = None,
    header: rf.Header = None,
    names: rf.Names = None,
    sep: rf.Sep = None,
    na_values: rf.NaValues = None,
    encoding: rf.Encoding = None,
    allow_ragged_rows: rf.Ragged = None,
    allow_duplicate_columns: rf.Duplicates = None,
    as_json: AsJson = False,
) -> None:
    """Write a self-contained HTML report: metrics, curves, slices, importance, fairness, card.

    --data is read with the project spec's read keys (data.header, names, …); flags override.
    """
    from keizoku.evaluation.report import write_report
    from keizoku.spec import project_read_options

    flags = rf.ReadFlags(header, names, sep, na_values, encoding, allow_ragged_rows,
                         allow_duplicate_columns)  # fmt: skip
    read = rf.read_options(project_read_options(rf.model_name(ref), config), flags)
    path = write_report(ref, html or output, data=data, spec=_spec(config), read=read)
    if as_json:
        _io.emit_json({"model": ref, "output": str(path), "data": data})
        return
    _io.console.print(f"Wrote report of [bold]{ref}[/] to [bold]{path}[/]")


def explain(
    ref: Ref,
    row: Annotated[str | None, typer.Option("--row", help="One record as JSON.")] = None,
    row_file: Annotated[
        Path | None, typer.Option("--row-file", help="File holding one JSON record.")
    ] = None,
    top: Annotated[int, typer.Option(help="How many contributions to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    allow_unseen: Annotated[
        bool,
        typer.Option(
            "--allow-unseen",
            help="Explain a row with unseen categories or missing features anyway (warns).",
        ),
    ] = False,
    image: Annotated[
        Path | None, typer.Option("--image", help="An image model: the PNG/JPEG to explain.")
    ] = None,
    overlay: Annotated[
        Path | None,
        typer.Option("--overlay", help="With --image: write the heat map over it to this PNG."),
    ] = None,
) -> None:
    """Explain one prediction: each feature's contribution (they add up to the output).

    For an image model, --image FILE: each pixel's attribution (integrated gradients).
    """
    from keizoku.errors import UserInputError
    from keizoku.serving.explain_routes import explain_ref

    if image is not None:
        if row is not None or row_file is not None:
            raise UserInputError("Give --image for an image model, or --row for a table: not both.")
        from keizoku.cli.images import explain_image

        return explain_image(ref, image, overlay, as_json)
    if overlay is not None:
        raise UserInputError("--overlay draws an image's attribution: add --image FILE.")
    result = explain_ref(ref, _row(row, row_file), top, allow_unseen=allow_unseen)
    if result.get("warnings"):
        _io.err.print(f"[yellow]warning:[/] {result['warnings']['message']}", highlight=False)
    console = _io.console
    if as_json:
        _io.emit_json(result)
        return
    cls = f" (class {result['output_class']})" if result["output_class"] is not None else ""
    table = _io.table(
        f"{result['model']}:{result['version']} predicts {result['prediction']!r}; "
        f"{result['space']}{cls} = {result['output']:.4g}",
        ["feature", "value", "contribution"],
        right=("contribution",),
    )
    table.add_row("(expected value)", "", f"{result['expected_value']:+.4g}", style="dim")
    for c in result["contributions"]:
        table.add_row(c["feature"], json.dumps(c["value"]), f"{c['contribution']:+.4g}")
    if result["rest"]:
        table.add_row("(other features)", "", f"{result['rest']:+.4g}", style="dim")
    console.print(table)
    console.print(f"method: {result['method']}")


def evidence(ref: Ref, config: SpecOpt = None, as_json: AsJson = False) -> None:
    """Check a version as `keizoku promote` does (hashes, gate verdict, evidence).

    Exit 6 when promotion would be refused (a version never gated or failed is refused),
    5 when its files do not match their recorded hashes.
    """
    from keizoku.errors import GateError
    from keizoku.lifecycle.rollout import promotion_refusals
    from keizoku.registry.models import resolve, verify_version

    name, version = resolve(ref)
    verify_version(name, version)
    reasons = promotion_refusals(name, version, _spec(config))
    if as_json:
        _io.emit_json({"model": name, "version": version, "sufficient": not reasons,
                       "refusals": reasons})  # fmt: skip
    if reasons:
        raise GateError("Promotion would be refused:\n- " + "\n- ".join(reasons))
    if not as_json:
        _io.console.print(f"{name}:{version}: evidence is sufficient for promotion.")


def register(app: typer.Typer) -> None:
    """Add this package's commands to app. Keep imports inside the commands."""
    app.command("report")(report)
    app.command("explain")(explain)
    app.command("evidence")(evidence)
