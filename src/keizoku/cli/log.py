"""``keizoku log``: the prediction log's files (docs/log.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from keizoku.cli import _io
from keizoku.errors import UserInputError

__all__ = ["log_app", "register"]

log_app = typer.Typer(help="The prediction log's files: compaction.", no_args_is_help=True)


@log_app.command("compact")
def _compact(
    model: Annotated[
        str | None, typer.Argument(help="Registered model name (default: every logged model).")
    ] = None,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Merge segments written at least this long ago.")
    ] = "1h",
    target_rows: Annotated[
        int, typer.Option("--target-rows", help="Rows per compacted file (about).")
    ] = 1_000_000,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="Delete replaced segments once their compacted file is this old "
            "(readers skip them before; 0s: at once).",
        ),
    ] = "10m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Merge small log segments (predictions and feedback) into files of about
    --target-rows rows; safe while servers write and readers read."""
    from keizoku.duration import parse_duration
    from keizoku.monitoring.compact import compact, models_with_logs
    from keizoku.names import check_name

    if target_rows < 1:
        raise UserInputError(f"--target-rows {target_rows} must be at least 1 (e.g. 1000000).")
    older = parse_duration(older_than, what="--older-than")
    keep = parse_duration(grace, what="--grace")
    names = [check_name(model)] if model is not None else models_with_logs()
    results = [
        r.to_dict()
        for name in names
        for r in compact(name, older_than_s=older, target_rows=target_rows, grace_s=keep)
    ]
    if as_json:
        _io.emit_json({"results": results})
        return
    if not results:
        _io.say("No prediction log yet: nothing to compact.")
        return
    t = _io.table("Log compaction", ["model", "kind", "files before", "files after",
                                     "merged", "rows", "deleted"],
                  right=("files before", "files after", "merged", "rows", "deleted"))  # fmt: skip
    for r in results:
        t.add_row(r["model"], r["kind"], str(r["files_before"]), str(r["files_after"]),
                  str(r["replaced"]), str(r["rows"]), str(r["deleted"]))  # fmt: skip
    _io.console.print(t)


def register(app: typer.Typer) -> None:
    """Add ``log`` to the main app."""
    app.add_typer(log_app, name="log")
