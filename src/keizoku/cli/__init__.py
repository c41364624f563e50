"""The ``keizoku`` command: a thin shell that parses, calls the library and prints."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from keizoku.errors import KeizokuWarning, UserInputError

_STARTED = time.monotonic()

app = typer.Typer(
    name="keizoku",
    help="From a raw table to a monitored model that keeps improving itself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

NoHeader = Annotated[
    bool, typer.Option("--no-header", help="The file has no header row; columns become col0..colN.")
]
Sep = Annotated[str | None, typer.Option("--sep", help="Field separator (default: by extension).")]
NaValues = Annotated[
    list[str] | None,
    typer.Option("--na-values", help="Extra token(s) that mean missing, e.g. '?'. Repeatable."),
]
Drop = Annotated[list[str] | None, typer.Option("--drop", help="Column(s) to drop. Repeatable.")]
Encoding = Annotated[str, typer.Option("--encoding", help="Text encoding of the file.")]
Sql = Annotated[str | None, typer.Option("--sql", help="SQL query to read instead of a file.")]
Db = Annotated[
    str | None, typer.Option("--db", help="SQLite/DuckDB file or SQLAlchemy URL for --sql.")
]


def _read_spec(
    no_header: bool,
    sep: str | None,
    na_values: list[str] | None,
    drop: list[str] | None,
    encoding: str,
    sql: str | None,
    db: str | None,
    id_cols: list[str] | None = None,
) -> Any:
    from keizoku.spec import DataSpec

    return DataSpec(
        header=not no_header,
        sep=sep,
        na_values=na_values or [],
        drop=drop or [],
        encoding=encoding,
        sql=sql,
        db=db,
        id_columns=id_cols or [],
    )


def _task(task: str | None) -> Any:
    if task not in (None, "binary", "multiclass", "regression"):
        raise UserInputError(
            f"--task '{task}' is unknown: use binary, multiclass or regression "
            "(or leave it out to detect it from the target)."
        )
    return task


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, KeizokuWarning):
            err.print(f"[yellow]warning:[/] {w.message}")


def _schema_table(schema: Any) -> Table:
    table = Table(title=f"Schema (target: {schema.target}, task: {schema.task})")
    for col in ("column", "kind", "role", "type", "nullable", "values", "note"):
        table.add_column(col)
    for c in schema.columns:
        if c.categories is not None:
            shown = ", ".join(map(str, c.categories[:6])) + (" …" if len(c.categories) > 6 else "")
        elif c.min is not None:
            shown = f"{c.min:g} … {c.max:g}"
        else:
            shown = ""
        style = "dim" if c.role in ("ignored", "id") else ""
        table.add_row(
            c.name,
            c.kind,
            c.role,
            c.dtype,
            "yes" if c.nullable else "no",
            shown,
            c.note or "",
            style=style,
        )
    return table


@app.command()
def init(
    data: Annotated[str | None, typer.Argument(help="CSV/TSV(.gz)/Parquet/JSONL file.")] = None,
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")] = ...,  # type: ignore[assignment]
    task: Annotated[
        str | None, typer.Option(help="binary, multiclass or regression (default: detected).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Project (registered model) name.")] = None,
    id_col: Annotated[list[str] | None, typer.Option("--id", help="Identifier column(s).")] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option(
            "--sensitive", help="Sensitive column(s): excluded from features, used for fairness."
        ),
    ] = None,
    config: Annotated[Path, typer.Option("--config", "-c", help="Spec file to write.")] = Path(
        "keizoku.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
    no_header: NoHeader = False,
    sep: Sep = None,
    na_values: NaValues = None,
    drop: Drop = None,
    encoding: Encoding = "utf-8-sig",
    sql: Sql = None,
    db: Db = None,
) -> None:
    """Infer the schema of DATA and write keizoku.yaml + schema.yaml."""
    from keizoku.project import init_project

    read = _read_spec(no_header, sep, na_values, drop, encoding, sql, db, id_col)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KeizokuWarning)
        spec, schema = init_project(
            data,
            target,
            read=read,
            task=_task(task),
            name=name,
            sensitive=sensitive,
            spec_path=config,
            force=force,
        )
    _show_warnings(caught)
    console.print(_schema_table(schema))
    console.print(
        f"Wrote [bold]{config}[/] (project '{spec.project}') and "
        f"[bold]{spec.schema_file}[/]. Edit them, then run: keizoku train"
    )


@app.command()
def profile(
    data: Annotated[str | None, typer.Argument(help="Data file.")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    id_col: Annotated[list[str] | None, typer.Option("--id", help="Identifier column(s).")] = None,
    no_header: NoHeader = False,
    sep: Sep = None,
    na_values: NaValues = None,
    drop: Drop = None,
    encoding: Encoding = "utf-8-sig",
    sql: Sql = None,
    db: Db = None,
) -> None:
    """Profile DATA: schema, missing values, cardinality, target balance, leakage."""
    from keizoku.data.ingest import read_table
    from keizoku.data.profile import profile_frame, write_profile_html
    from keizoku.data.schema import infer_schema

    read = _read_spec(no_header, sep, na_values, drop, encoding, sql, db, id_col)
    frame = read_table(data, read.read_options())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KeizokuWarning)
        schema = infer_schema(frame, target, id_columns=id_col)
    _show_warnings(caught)
    console.print(_schema_table(schema))
    prof = profile_frame(frame, schema)
    for table in prof.rich_tables():
        console.print(table)
    for w in prof.warnings:
        console.print(f"[yellow]•[/] {w}")
    if html is not None:
        write_profile_html(prof, frame, schema, html)
        console.print(f"Wrote [bold]{html}[/]")


def _leaderboard_table(board: Any, metric: str, limit: int = 15) -> Table:
    table = Table(title=f"Leaderboard (CV {metric})")
    for col in ("#", "model", metric, "± std", "fit s", "latency ms/row", "size MB", "status"):
        table.add_column(col, justify="right" if col not in ("model", "status") else "left")
    for i, row in board.head(limit).iterrows():
        chosen = f" ★×{int(row['chosen'])}" if row["chosen"] else ""
        status = str(row["status"]) + chosen
        table.add_row(
            str(i + 1),
            row["model"],
            _fmt(row["score"]),
            _fmt(row["std"]),
            _fmt(row["fit_time_s"], 2),
            _fmt(row["latency_ms"], 3),
            _fmt(row["size_mb"], 2),
            status,
            style="bold green" if row["chosen"] else "",
        )
    return table


def _fmt(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if v != v else f"{v:.{digits}f}"


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Spec file.")] = Path(
        "keizoku.yaml"
    ),
    budget: Annotated[str | None, typer.Option(help="Time budget, e.g. 60s, 5m.")] = None,
    search: Annotated[str | None, typer.Option(help="bayes, random or grid.")] = None,
    preset: Annotated[str | None, typer.Option(help="fast, balanced or best.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to optimise.")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="Restrict to model family (repeatable).")
    ] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Only choose models that score one row within this time.")
    ] = None,
    max_size_mb: Annotated[
        float | None, typer.Option(help="Only choose models at most this big.")
    ] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    max_trials: Annotated[
        int | None,
        typer.Option(
            min=1, help="Stop after N finished trials, whatever the clock (deterministic)."
        ),
    ] = None,
) -> None:
    """Search models under a time budget, ensemble, register and gate the result.

    The first version becomes champion. Later ones are gated against the champion on a
    hold-out of the data and become challenger, or exit 6 when the gates fail.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from keizoku.duration import parse_duration
    from keizoku.lifecycle.retrain import train_gated
    from keizoku.spec import load_spec

    spec, _ = load_spec(config)
    total = parse_duration(budget, what="--budget") if budget else spec.train.budget
    overrides = {
        "budget": budget,
        "search": search,
        "preset": preset,
        "metric": metric,
        "models": models,
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
        "folds": folds,
        "seed": seed,
        "max_trials": max_trials,
    }
    best: dict[str, Any] = {"score": None, "model": ""}
    with Progress(
        TextColumn("[bold]searching"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        bar = progress.add_task("", total=total)

        def on_trial(t: Any, elapsed: float) -> None:
            if t.status == "ok" and (best["score"] is None or t.mean > best["score"]):
                best.update(score=t.mean, model=t.family)
            shown = f"best {abs(best['score']):.4f} ({best['model']})" if best["score"] else ""
            progress.update(
                bar, completed=min(elapsed, total), description=f"trial {t.number + 1} · {shown}"
            )

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KeizokuWarning)
            outcome, admission = train_gated(
                config, overrides=overrides, on_trial=on_trial, started=_STARTED
            )
    _show_warnings(caught)
    res = outcome.result
    console.print(_leaderboard_table(res.leaderboard, res.metric.name))
    members = ", ".join(f"{m.family}×{m.weight:g}" for m in res.model.members)
    console.print(
        f"Best: [bold]{members}[/] · CV {res.metric.name} {res.cv_score:.4f} ± {res.cv_std:.4f} · "
        f"{len(res.trials)} trials in {res.elapsed_s:.1f}s"
    )
    if not res.model.info.get("refit_on_all_rows", True):
        err.print(
            "[yellow]warning:[/] the budget left no time to refit on all rows: the model "
            "fitted on the last cross-validation fold is registered. Raise --budget for more."
        )
    _print_admission(outcome.name, outcome.version, admission)


def _print_admission(name: str, version: int, admission: Any) -> None:
    """Say where the candidate went; exit 6 when it failed its gates."""
    for check in admission.gates.checks if admission.gates else []:
        mark = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        console.print(f"  {mark} {check.name}: {check.detail}")
    if admission.state == "champion":
        console.print(
            f"Registered [bold]{name}:{version}[/] as [bold]champion[/] (first version, no "
            f"champion to gate against). Score a file: keizoku predict --model "
            f"{name}@champion DATA -o predictions.csv"
        )
    elif admission.state == "challenger":
        console.print(_challenger_message(name, version, admission.displaced))
    else:
        from keizoku.errors import GateError

        raise GateError(
            f"{name}:{version} failed its gates: "
            + "; ".join(r.rstrip(".") for r in (admission.gates.reasons if admission.gates else []))
            + ". It stays registered for inspection (tag keizoku.gate=failed) but receives "
            "no traffic; the champion and challenger are unchanged."
        )


def _challenger_message(name: str, version: int, displaced: int | None) -> str:
    """Where the admitted candidate stands *now*: another train may have replaced it since."""
    from keizoku.registry.models import aliases

    now = aliases(name).get("challenger")
    replaced = f" It replaced {name}:{displaced} as challenger." if displaced else ""
    if now != version:
        since = f"{name}:{now} has replaced it since" if now else "it is no longer challenger"
        return (
            f"Registered [bold]{name}:{version}[/]: it passed its gates against the champion "
            f"and was admitted as challenger, but {since}.{replaced} See `keizoku models "
            f"{name}`; promote it with `keizoku promote {name} {version}` if you want it."
        )
    return (
        f"Registered [bold]{name}:{version}[/]: it passed its gates against the champion "
        f"and is the [bold]challenger[/].{replaced} Promote it with `keizoku promote {name} "
        f"{version}` or A/B test it."
    )


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
) -> None:
    """List registered models, their versions, states, aliases and metrics."""
    from keizoku.lifecycle.state import states
    from keizoku.registry.models import list_models, list_versions, require_model

    names = [require_model(name)] if name else list_models()
    if not names:
        console.print(
            "No registered models yet. Run: keizoku init DATA --target COL; keizoku train"
        )
        return
    table = Table(title="Registered models")
    for col in ("model", "version", "aliases", "metric", "CV score", "members", "created", "state"):
        table.add_column(col)
    import time as _time

    for n in names:
        state = states(n)
        for v in list_versions(n):
            table.add_row(
                n,
                str(v.version),
                ", ".join(v.aliases),
                v.tags.get("keizoku.metric", ""),
                v.tags.get("keizoku.cv_score", ""),
                v.tags.get("keizoku.members", ""),
                _time.strftime("%Y-%m-%d %H:%M", _time.localtime(v.created)),
                state.get(v.version, ""),
            )
    console.print(table)


@app.command()
def predict(
    data: Annotated[str, typer.Argument(help="File to score.")],
    model: Annotated[str, typer.Option("--model", "-m", help="NAME[@alias|:version].")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.csv or out.parquet")],
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 10_000,
    no_header: NoHeader = False,
    sep: Sep = None,
    na_values: NaValues = None,
    drop: Drop = None,
    encoding: Encoding = "utf-8-sig",
    allow_unseen: Annotated[
        bool,
        typer.Option(
            "--allow-unseen",
            help="Score rows with unseen categories or missing features anyway (warns with "
            "a count); by default they are an error, as on the server.",
        ),
    ] = False,
) -> None:
    """Score a file with a registered model, in batches (rows checked as the server does)."""
    from rich.progress import Progress

    from keizoku.project import predict_file

    read = _read_spec(no_header, sep, na_values, drop, encoding, None, None).read_options()
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("scoring", total=None)

        def on_batch(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KeizokuWarning)
            n = predict_file(
                model,
                data,
                str(output),
                read=read,
                batch_size=batch_size,
                on_batch=on_batch,
                allow_unseen=allow_unseen,
            )
    _show_warnings(caught)
    console.print(f"Wrote {n} predictions to [bold]{output}[/]")


# Every command group registers itself the same way: ``module.register(app)``.
from keizoku.cli import (  # noqa: E402
    doctor,
    evaluation,
    keys,
    lifecycle,
    monitoring,
    rag,
    rollout,
    serving,
)

for _group in (serving, lifecycle, rollout, monitoring, evaluation, keys, rag, doctor):
    _group.register(app)


def _version(value: bool) -> None:
    if value:
        from keizoku import __version__

        typer.echo(f"keizoku {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """From a raw table to a monitored model that keeps improving itself."""


def main() -> None:
    """Entry point of the ``keizoku`` script: the exit code is ``keizoku.errors.ExitCode``."""
    from keizoku.cli._exit import run

    sys.exit(run(app, err))


if __name__ == "__main__":
    main()
