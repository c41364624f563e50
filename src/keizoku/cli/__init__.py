"""The ``keizoku`` command: a thin shell that parses, calls the library and prints."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from keizoku.cli import _io
from keizoku.cli import _read as rf
from keizoku.errors import KeizokuWarning, UserInputError

_STARTED = time.monotonic()

app = typer.Typer(
    name="keizoku",
    help="From a raw table to a monitored model that keeps improving itself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = _io.console
err = _io.err

Drop = Annotated[list[str] | None, typer.Option("--drop", help="Column(s) to drop. Repeatable.")]
Sql = Annotated[str | None, typer.Option("--sql", help="SQL query to read instead of a file.")]
Db = Annotated[
    str | None, typer.Option("--db", help="SQLite/DuckDB file or SQLAlchemy URL for --sql.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _task(task: str | None) -> Any:
    from typing import get_args

    from keizoku.data.schema import Task

    if task is not None and task not in get_args(Task):
        raise UserInputError(
            f"--task '{task}' is unknown: use {', '.join(get_args(Task))} "
            "(or leave it out to detect it from the target; no target: clustering)."
        )
    return task


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, KeizokuWarning):
            err.print(f"[yellow]warning:[/] {w.message}")


def _schema_table(schema: Any) -> Table:
    table = _io.table(
        f"Schema (target: {schema.target}, task: {schema.task})",
        ["column", "kind", "role", "type", "nullable", "values", "note"],
    )
    for c in schema.columns:
        if c.categories is not None:
            more = len(c.categories) - 6
            shown = ", ".join(map(str, c.categories[:6])) + (f" (+{more} more)" if more > 0 else "")
        elif c.min is not None:
            shown = f"{c.min:g} to {c.max:g}"
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
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Column to predict (none: clustering).")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="binary, multiclass, regression, forecast or clustering (default: detected)."
        ),
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
    header: rf.Header = None,
    names: rf.Names = None,
    sep: rf.Sep = None,
    na_values: rf.NaValues = None,
    encoding: rf.Encoding = None,
    allow_ragged_rows: rf.Ragged = None,
    allow_duplicate_columns: rf.Duplicates = None,
    drop: Drop = None,
    sql: Sql = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Infer the schema of DATA and write keizoku.yaml + schema.yaml (read options included)."""
    from keizoku.project import init_project
    from keizoku.spec import DataSpec

    flags = rf.ReadFlags(header, names, sep, na_values, encoding, allow_ragged_rows,
                         allow_duplicate_columns)  # fmt: skip
    read = DataSpec(sql=sql, db=db, drop=drop or [], id_columns=id_col or [], **flags.given())
    _suggest_no_header(data, read.read_options())
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
    if not target and not as_json:
        err.print("No --target given: the task is [bold]clustering[/] (pass --target COLUMN "
                  "to predict a column instead).", highlight=False)  # fmt: skip
    if as_json:
        _io.emit_json({"spec": str(config), "project": spec.project, "task": spec.task,
                       "schema_file": spec.schema_file, "schema": schema.model_dump(mode="json"),
                       "data": spec.data.model_dump(mode="json", exclude_none=True)})  # fmt: skip
        return
    console.print(_schema_table(schema))
    if spec.forecast is not None:  # forecasting: say what was inferred (keizoku.forecast)
        fc = spec.forecast
        console.print(
            f"Task [bold]forecast[/]{' (inferred)' if task is None else ''}: time column "
            f"'{fc.time}', frequency {fc.frequency}, horizon {fc.horizon}"
            + (f", series by {fc.ids}" if fc.ids else "")
            + ". Edit the forecast: section of the spec to change them."
        )
    if spec.images is not None:  # images: say what was inferred (keizoku.deep.images)
        counts = ", ".join(f"{c} {n}" for c, n in spec.images.counts.items())
        console.print(
            f"Images ({spec.images.source}): {len(spec.images.classes)} classes ({counts}), "
            f"resized to {spec.images.size[0]}x{spec.images.size[1]} "
            f"{'RGB' if spec.images.colour else 'grayscale'}. Edit the "
            "images: section of the spec to change them."
        )
    console.print(
        f"Wrote [bold]{config}[/] (project '{spec.project}') and "
        f"[bold]{spec.schema_file}[/]. Edit them, then run: keizoku train"
    )


def _suggest_no_header(data: str | None, read: Any) -> None:
    """Warn when header names read as numbers: the file probably has no header row."""
    from keizoku.data.ingest import numeric_header

    numeric = numeric_header(data, read)
    if numeric:
        shown = ", ".join(numeric[:4]) + (" …" if len(numeric) > 4 else "")
        err.print(
            f"[yellow]warning:[/] column name(s) {shown} look like data: if the file has no "
            "header row, rerun with --no-header --names a,b,c (spec keys data.header, "
            "data.names) and --force.",
            highlight=False,
        )


@app.command()
def profile(
    data: Annotated[str | None, typer.Argument(help="Data file.")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target column.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write an HTML report here.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", hidden=True)] = None,
    id_col: Annotated[list[str] | None, typer.Option("--id", help="Identifier column(s).")] = None,
    header: rf.Header = None,
    names: rf.Names = None,
    sep: rf.Sep = None,
    na_values: rf.NaValues = None,
    encoding: rf.Encoding = None,
    allow_ragged_rows: rf.Ragged = None,
    allow_duplicate_columns: rf.Duplicates = None,
    drop: Drop = None,
    sql: Sql = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Profile DATA: schema, missing values, cardinality, target balance, leakage."""
    from keizoku.data.ingest import ReadOptions, read_table
    from keizoku.data.profile import profile_frame, write_profile_html
    from keizoku.data.schema import infer_schema

    flags = rf.ReadFlags(header, names, sep, na_values, encoding, allow_ragged_rows,
                         allow_duplicate_columns)  # fmt: skip
    read = rf.read_options(ReadOptions(), flags, sql=sql, db=db, drop=drop or [])
    out = output or html
    _suggest_no_header(data, read)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KeizokuWarning)
        frame = read_table(data, read)
        schema = infer_schema(frame, target, id_columns=id_col)
    _show_warnings(caught)
    prof = profile_frame(frame, schema)
    if out is not None:
        write_profile_html(prof, frame, schema, out)
    if as_json:
        _io.emit_json({"schema": schema.model_dump(mode="json"), "profile": prof.to_dict(),
                       "html": str(out) if out else None})  # fmt: skip
        return
    console.print(_schema_table(schema))
    for table in prof.rich_tables():
        console.print(_io.fit(table))
    for w in prof.warnings:
        console.print(f"[yellow]•[/] {w}")
    if out is not None:
        console.print(f"Wrote [bold]{out}[/]")


def _leaderboard_table(res: Any, every: bool = False, limit: int = 15) -> Table:
    """The search's leaderboard: the best trial of each family (every trial with ``every``),
    the chosen trials, and the ensemble as a row of its own."""
    metric = res.metric.name
    board = res.leaderboard
    shown = "every trial" if every else "the best trial of each family; --all: every trial"
    table = Table(title=f"Leaderboard (CV {metric})", caption=shown, pad_edge=False)
    for col in ("#", "model", "trials", metric, "± std", "fit s", "latency ms/row", "size MB"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_column("status")
    rows = board.head(limit) if every else _best_per_family(board)
    counts = board["model"].value_counts() if not board.empty else {}
    for i, row in rows.iterrows():
        chosen = f" ★×{int(row['chosen'])}" if row["chosen"] else ""
        table.add_row(
            str(int(i) + 1),
            row["model"],
            "1" if every else str(int(counts[row["model"]])),
            _fmt(row["score"]),
            _fmt(row["std"]),
            _fmt(row["fit_time_s"], 2),
            _fmt(row["latency_ms"], 3),
            _fmt(row["size_mb"], 2),
            str(row["status"]) + chosen,
            style="bold green" if row["chosen"] else "",
        )
    picked = board[board["chosen"] > 0]
    if len(picked) > 1:
        copies = _bag_size(res)
        table.add_row(
            "",
            "ensemble",
            str(len(picked)),
            _fmt(res.cv_score),
            "",
            "",
            _fmt(picked["latency_ms"].sum() * copies, 3),
            _fmt(picked["size_mb"].sum() * copies, 2),
            "chosen",
            style="bold green",
            end_section=False,
        )
    table = _io.fit(table)
    table.columns[1].min_width = max([len("ensemble"), *(len(str(m)) for m in rows["model"])])
    return table


def _bag_size(res: Any) -> int:
    """How many fold models serve each chosen trial: k for a bag, else 1."""
    return int(res.model.info.get("folds", 1)) if res.model.info.get("bagged") else 1


def _best_per_family(board: Any) -> Any:
    """The best-scoring trial of each family, plus every chosen trial (board order kept)."""
    if board.empty:
        return board
    first = ~board["model"].duplicated()
    return board[first | (board["chosen"] > 0)]


def _legend(res: Any, every: bool) -> str:
    k = res.model.info.get("folds", "k")
    lines = [
        f"Scores: mean over {k} cross-validation folds ± their std"
        + ("" if every else "; 'trials': how many the search ran of that family (--all: every one)")
        + ".",
        "★ chosen for the model; ×N: picked N times by the greedy ensemble (its weight is N "
        "over the total).",
    ]
    if _bag_size(res) > 1:
        lines.append(
            f"bag: each chosen trial is served as the average of its {_bag_size(res)} fold "
            "models (no refit on all rows); latency and size above are one fold model's."
        )
    if (res.leaderboard["chosen"] > 0).sum() > 1:
        lines.append(
            "ensemble: the chosen trials' out-of-fold predictions, weighted, scored once; "
            "latency and size are the sums over every model it serves."
        )
    return "\n".join(f"[dim]{line}[/]" for line in lines)


def _best_line(res: Any) -> tuple[str, float, float | None]:
    """(what was chosen, its score, its std): the same numbers as its leaderboard row."""
    board = res.leaderboard
    picked = board[board["chosen"] > 0]
    bag = f" (each a bag of {_bag_size(res)} fold models)" if _bag_size(res) > 1 else ""
    if len(picked) > 1:
        names = ", ".join(f"{r['model']}×{int(r['chosen'])}" for _, r in picked.iterrows())
        return f"ensemble of {names}{bag}", float(res.cv_score), None
    row = picked.iloc[0]
    bag = bag.replace("each a ", "a ")
    return f"{row['model']}{bag}", float(row["score"]), float(row["std"])


def _dropped_notes(res: Any, rule: dict[str, bool]) -> list[str]:
    """Models that scored better than the chosen one but broke a latency or size limit."""
    board = res.leaderboard
    greater = res.metric.greater_is_better
    _, best, _ = _best_line(res)
    notes = []
    for _, row in board[board["status"].isin(["too slow", "too big"])].iterrows():
        better = row["score"] > best if greater else row["score"] < best
        if not better:
            continue
        slow = row["status"] == "too slow"
        what = f"{_fmt(row['latency_ms'], 3)} ms/row" if slow else f"{_fmt(row['size_mb'], 2)} MB"
        flag = "--max-latency-ms" if slow else "--max-size-mb"
        whose = "your limit" if rule["latency" if slow else "size"] else "the preset's preference"
        notes.append(
            f"{row['model']} (trial {int(row['trial'])}) scored {_fmt(row['score'])}, better "
            f"than the chosen {_fmt(best)}, but was dropped: {what} is over {whose} "
            f"({row['status']}). Pass a larger {flag} to allow it."
        )
    return notes


def _fmt(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if v != v else f"{v:.{digits}f}"


def _json_number(value: Any) -> Any:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return value
    return None if v != v or v in (float("inf"), float("-inf")) else v


def _epochs(t: Any) -> str:
    """A network's trial line adds its folds' best epochs and last validation loss."""
    curves = getattr(t, "curves", None)
    if not curves:
        return ""
    best = t.best_iterations[-1] if t.best_iterations else 0
    val = curves[-1][best - 1][2] if 0 < best <= len(curves[-1]) else None
    loss = f", val loss {val:.4f}" if val is not None else ""
    epochs = "/".join(map(str, t.best_iterations))
    return f" · best epochs {epochs} of {max(map(len, curves))}{loss}"


class _TrainLog:
    """Progress of ``keizoku train``: a live bar on a terminal, else one flushed line per
    finished trial and per phase on stderr (CI logs, ``| cat``, nohup)."""

    def __init__(self, started: float, budget: float, sign: float | None, lines: bool) -> None:
        self.started, self.budget, self.sign, self.lines = started, budget, sign, lines
        self.best: tuple[float, str] | None = None
        self.progress: Any = None
        self.bar: Any = None

    def __enter__(self) -> _TrainLog:
        if not self.lines:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.progress.__enter__()
            self.bar = self.progress.add_task("", total=self.budget, phase="reading")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def _shown(self, oriented: float) -> float:
        return oriented * self.sign if self.sign is not None else abs(oriented)

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def trial(self, t: Any, elapsed: float) -> None:
        if t.status == "ok" and (self.best is None or t.mean > self.best[0]):
            self.best = (t.mean, t.family)
        best = f"best {self._shown(self.best[0]):.4f} ({self.best[1]})" if self.best else ""
        if self.lines:
            score = f"{self._shown(t.mean):.4f} ± {t.std:.4f}" if t.fold_scores else "—"
            self._line(
                f"trial {t.number + 1} {t.family}: {t.status} {score} "
                f"(fit {t.fit_time_s:.1f}s){_epochs(t)} · {best}"
            )
        else:
            now = time.monotonic() - self.started
            self.progress.update(
                self.bar,
                completed=min(now, self.budget),
                phase="searching",
                description=f"trial {t.number + 1} · {best}",
            )

    def phase(self, name: str, elapsed: float) -> None:
        following = {"startup": "reading", "read": "searching", "search": "evidence"}
        if self.lines:
            self._line(f"{name} done")
        else:
            self.progress.update(
                self.bar,
                completed=min(elapsed, self.budget),
                phase=following.get(name, "registering" if name == "evidence" else "gating"),
            )


PHASE_ORDER = ("startup", "read", "search", "evidence", "registration", "gates")


def _time_summary(outcome: Any, wall: float) -> str:
    """Where the budget went: each phase, the search's own phases in brackets."""
    res = outcome.result
    inner = getattr(res, "phases", {}) or {}
    parts = []
    for name in PHASE_ORDER:
        if name not in outcome.phases:
            continue
        text = f"{name} {outcome.phases[name]:.1f}"
        if name == "search":
            finished = sum(t.status in ("ok", "too slow", "too big") for t in res.trials)
            capped = res.max_trials is not None and finished >= res.max_trials
            trials = f"{len(res.trials)} trials" + (
                f", stopped at --max-trials {res.max_trials}" if capped else ", until the clock"
            )
            sub = "; ".join(f"{k} {v:.1f}" for k, v in inner.items())
            text += f" ({trials}{'; ' + sub if sub else ''})"
        parts.append(text)
    return f"Time: {wall:.1f}s of a {outcome.budget_s:g}s budget — " + " · ".join(parts) + " (s)"


RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on this Ray cluster: auto, HOST:PORT or ray://HOST:PORT (keizoku[ray]; "
        "docs/ray.md).",
    ),
]


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Spec file.")] = Path(
        "keizoku.yaml"
    ),
    budget: Annotated[
        str | None, typer.Option(help="Time budget for the whole command, e.g. 60s, 5m.")
    ] = None,
    search: Annotated[str | None, typer.Option(help="bayes, random or grid.")] = None,
    preset: Annotated[str | None, typer.Option(help="fast, good (default) or best.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to optimise.")] = None,
    families: Annotated[
        list[str] | None,
        typer.Option("--family", help="Restrict the search to a model family (repeatable)."),
    ] = None,
    old_families: Annotated[
        list[str] | None,
        typer.Option("--model", hidden=True, help="Deprecated: use --family."),
    ] = None,
    excluded: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-family",
            metavar="F[,F]",
            help="Never try these model families (repeatable), e.g. one `keizoku export` "
            "cannot convert.",
        ),
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
    every: Annotated[
        bool, typer.Option("--all", help="Show every trial, not the best of each family.")
    ] = False,
    ray: RayAddress = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (schema: docs/training.md).")
    ] = False,
) -> None:
    """Search models under a time budget, ensemble, register and gate the result.

    The budget covers the whole command (start-up, reading, search, evidence,
    registration, gates). The first version becomes champion. Later ones are gated
    against the champion on a hold-out of the data and become challenger, or exit 6
    when the gates fail.
    """
    import json

    from keizoku.duration import parse_duration
    from keizoku.lifecycle.retrain import train_gated
    from keizoku.project import process_started
    from keizoku.spec import load_spec

    started = process_started() or _STARTED
    if old_families:
        err.print("[yellow]warning:[/] `keizoku train --model` is deprecated: use --family.")
    spec, _ = load_spec(config)
    _connect_ray(ray or spec.train.ray, spec)  # before any work: a bad address trains nothing
    if spec.task == "clustering":  # its own search, gates and output: keizoku.cli.clustering
        from keizoku.cli.clustering import train_clustering_command

        given = {"budget": budget, "max_trials": max_trials, "seed": seed}
        return train_clustering_command(config, given, started=started, as_json=as_json)
    total = parse_duration(budget, what="--budget") if budget else spec.train.budget
    if spec.task == "forecast":  # keizoku.forecast: its own leaderboard, same gates and audit
        from keizoku.cli.forecast import train_forecast

        given = {"budget": budget, "seed": seed, "max_trials": max_trials}
        return train_forecast(config, given, as_json, started)
    if spec.images is not None:  # keizoku.deep.loop: the CNN, same registry, gates and audit
        from keizoku.cli.images import train_images

        return train_images(config, {"seed": seed, "max_trials": max_trials}, as_json, started)
    overrides = {
        "budget": budget,
        "search": search,
        "preset": preset,
        "metric": metric,
        "models": [*(families or []), *(old_families or [])] or None,
        "exclude_models": [f.strip() for v in excluded or [] for f in v.split(",") if f.strip()]
        or None,
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
        "folds": folds,
        "seed": seed,
        "max_trials": max_trials,
        "ray": ray,
    }
    lines = not (console.is_terminal and err.is_terminal)
    with (
        _TrainLog(started, total, _metric_sign(spec, metric), lines) as log,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", KeizokuWarning)
        outcome, admission = train_gated(
            config, overrides=overrides, on_trial=log.trial, started=started, on_phase=log.phase
        )
    wall = time.monotonic() - started
    res = outcome.result
    rule = {
        "latency": (max_latency_ms or spec.train.max_latency_ms) is not None,
        "size": (max_size_mb or spec.train.max_size_mb) is not None,
    }
    notes = _dropped_notes(res, rule)
    if as_json:
        _show_warnings(caught)
        typer.echo(json.dumps(_train_json(outcome, admission, wall, notes, caught), default=str))
        _print_admission(outcome.name, outcome.version, admission, quiet=True)
        return
    _show_warnings(caught)
    console.print(_leaderboard_table(res, every))
    console.print(_legend(res, every))
    what, score, std = _best_line(res)
    spread = f" ± {std:.4f}" if std is not None else " (out-of-fold)"
    console.print(f"Best: [bold]{what}[/] · CV {res.metric.name} {score:.4f}{spread}")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(_time_summary(outcome, wall))
    if not res.model.info.get("refit_on_all_rows", True):
        err.print(
            "[yellow]warning:[/] the budget left no time to refit on all rows: the model "
            "fitted on the last cross-validation fold is registered. Raise --budget for more."
        )
    _print_admission(outcome.name, outcome.version, admission)


def _connect_ray(address: str | None, spec: Any = None) -> None:
    """Connect to the Ray cluster at ``address`` (if any) or fail with one line (exit 2/7)."""
    if not address:
        return
    if spec is not None and (spec.task in ("clustering", "forecast") or spec.images is not None):
        raise UserInputError(
            f"--ray / train.ray '{address}' runs tabular searches; this project "
            f"({spec.task if spec.images is None else 'images'}) trains here: drop --ray."
        )
    from keizoku.distributed.cluster import connect

    connect(address)


def _metric_sign(spec: Any, metric: str | None) -> float | None:
    """+1/-1 to show a trial's oriented score in the metric's own direction (None: unknown)."""
    from keizoku.training.metrics import get_metric

    try:
        return 1.0 if get_metric(metric or spec.train.metric, spec.task).greater_is_better else -1.0
    except (UserInputError, TypeError):
        return None


TRAIN_JSON_SCHEMA = "keizoku.train/1"


def _train_json(
    outcome: Any, admission: Any, wall: float, notes: list[str], caught: list[Any]
) -> dict[str, Any]:
    """``keizoku train --json``: one object, documented in docs/training.md."""
    res = outcome.result
    what, score, std = _best_line(res)
    board = [
        {k: _json_number(v) for k, v in row.items() if k != "params"} | {"params": row["params"]}
        for row in res.leaderboard.to_dict(orient="records")
    ]
    gates = admission.gates.checks if admission.gates else None
    return {
        "schema": TRAIN_JSON_SCHEMA,
        "model": outcome.name,
        "version": outcome.version,
        "state": admission.state,
        "displaced": admission.displaced,
        "metric": res.metric.name,
        "greater_is_better": bool(res.metric.greater_is_better),
        "best": {
            "model": what,
            "score": _json_number(score),
            "std": _json_number(std),
            "members": [{"family": m.family, "weight": m.weight} for m in res.model.members],
        },
        "cv_score_oof": _json_number(res.cv_score),
        "refit_on_all_rows": bool(res.model.info.get("refit_on_all_rows", True)),
        "trials": len(res.trials),
        "max_trials": res.max_trials,
        "leaderboard": board,
        "notes": notes,
        "warnings": [str(w.message) for w in caught if issubclass(w.category, KeizokuWarning)],
        "gates": None
        if gates is None
        else [{"name": c.name, "passed": bool(c.passed), "detail": c.detail} for c in gates],
        "budget_s": outcome.budget_s,
        "wall_s": round(wall, 3),
        "phases": {k: round(v, 3) for k, v in outcome.phases.items()},
        "search_phases": {k: round(v, 3) for k, v in (getattr(res, "phases", {}) or {}).items()},
    }


def _print_admission(name: str, version: int, admission: Any, quiet: bool = False) -> None:
    """Say where the candidate went; exit 6 when it failed its gates (``quiet``: only that)."""
    if quiet and admission.state != "gated-fail":
        return
    for check in [] if quiet or not admission.gates else admission.gates.checks:
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
    as_json: AsJson = False,
) -> None:
    """List registered models, their versions, states, aliases and metrics."""
    from keizoku.home import find_home

    found = find_home()
    shared = "KEIZOKU_TRACKING_URI" in os.environ or os.environ.get("KEIZOKU_STORE")
    if found.reason == "new" and not found.exists and not shared:
        _no_project(name, found.describe(), as_json)  # read-only: never create an empty home
        return
    rows = _model_rows(name)
    if as_json:
        _io.emit_json(rows)
        return
    if not rows:
        console.print(
            "No registered models yet. Run: keizoku init DATA --target COL; keizoku train"
        )
        return
    columns = ["model", "version", "aliases", "metric", "CV score", "members", "created", "state",
               "export"]  # fmt: skip
    table = _io.table("Registered models", columns, right=("version", "CV score"))
    for r in rows:
        table.add_row(
            r["model"], str(r["version"]), ", ".join(r["aliases"]), r["metric"], r["cv_score"],
            ", ".join(r["members"]), r["created"], r["state"], ", ".join(r["export"]),
        )  # fmt: skip
    console.print(table)


def _no_project(name: str | None, where: str, as_json: bool) -> None:
    if name:
        from keizoku.errors import NotFoundError

        raise NotFoundError(
            f"No registered model named '{name}': no keizoku project here, the home would be "
            f"{where}. Run it in the project's folder (or below), or set KEIZOKU_HOME."
        )
    if as_json:
        _io.emit_json([])
        return
    console.print(
        f"No keizoku project here: the home would be {where}. Run it in a project's folder "
        "(or below it), set KEIZOKU_HOME, or start one: keizoku init DATA --target COL"
    )


def _model_rows(name: str | None) -> list[dict[str, Any]]:
    """One JSON-ready row per registered version (``models --json`` prints these)."""
    from keizoku.lifecycle.state import states
    from keizoku.registry.models import list_models, list_versions, require_model

    rows = []
    for n in [require_model(name)] if name else list_models():
        state = states(n)
        for v in list_versions(n):
            members = v.tags.get("keizoku.members", "")
            rows.append({
                "model": n, "version": v.version, "state": state.get(v.version, ""),
                "aliases": list(v.aliases), "metric": v.tags.get("keizoku.metric", ""),
                "cv_score": v.tags.get("keizoku.cv_score", ""),
                "members": members.split(",") if members else [],
                "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created)),
                "export": _exports(v.tags),
            })  # fmt: skip
    return rows


def _exports(tags: dict[str, str]) -> list[str]:
    """The formats this version has a verified export in (``keizoku export``), e.g. onnx."""
    import json

    from keizoku.registry.models import TAG_EXPORT

    out = []
    for key, value in sorted(tags.items()):
        if key.startswith(TAG_EXPORT):
            try:
                summary = json.loads(value)
            except json.JSONDecodeError:
                continue
            if summary.get("verified"):
                fmt = key.removeprefix(TAG_EXPORT)
                out.append(f"{fmt} int8" if summary.get("quantize") else fmt)
    return out


PREDICT_SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")


@app.command()
def predict(
    data: Annotated[str, typer.Argument(help="File to score.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model: NAME, NAME@alias or NAME:version.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="'-' (CSV on stdout) or a file: .csv, .json, .jsonl, .parquet."
        ),
    ],
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 10_000,
    header: rf.Header = None,
    names: rf.Names = None,
    sep: rf.Sep = None,
    na_values: rf.NaValues = None,
    encoding: rf.Encoding = None,
    allow_ragged_rows: rf.Ragged = None,
    allow_duplicate_columns: rf.Duplicates = None,
    drop: Drop = None,
    allow_unseen: Annotated[
        bool,
        typer.Option(
            "--allow-unseen",
            help="Score rows with unseen categories or missing features anyway (warns with "
            "a count); by default they are an error, as on the server.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Spec whose data: read keys apply (default: found)."),
    ] = None,
    ray: RayAddress = None,
    as_json: AsJson = False,
) -> None:
    """Score a file with a registered model, in batches (rows checked as the server does).

    With --ray, a Parquet file or folder is scored with Ray Data on that cluster, in
    parallel blocks; the output is the same as without it.

    The file is read with the read keys of the model's project spec (data.header, names,
    na_values, …) when the spec found is that project's; flags override them.
    """
    from rich.progress import Progress

    from keizoku.spec import project_read_options

    to_stdout = output == "-"
    if to_stdout and as_json:
        raise UserInputError(
            "-o - writes the predictions on stdout, so --json has nowhere to go: write to a "
            "file (-o out.jsonl) with --json, or drop --json."
        )
    suffix = Path(output).suffix.lower()
    if not to_stdout and suffix not in PREDICT_SUFFIXES:
        raise UserInputError(
            f"--output '{output}' must end in {', '.join(PREDICT_SUFFIXES)}, or be '-' "
            "for CSV on stdout."
        )
    flags = rf.ReadFlags(header, names, sep, na_values, encoding, allow_ragged_rows,
                         allow_duplicate_columns)  # fmt: skip
    if ray:
        _refuse_read_flags_with_ray(flags, drop)
    base = project_read_options(rf.model_name(model), config)
    read = rf.read_options(base, flags, **({"drop": drop} if drop else {}))
    _connect_ray(ray)
    with Progress(console=err, transient=True, disable=_io.quiet()) as progress:
        bar = progress.add_task("scoring", total=None)

        def on_batch(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KeizokuWarning)
            direct = not to_stdout and suffix in (".csv", ".parquet", ".pq")
            target = output if direct else None
            n, scored = _score(model, data, target, read, batch_size, on_batch, allow_unseen,
                               ray)  # fmt: skip
    _show_warnings(caught)
    if to_stdout:
        scored.to_csv(sys.stdout, index=False)
        return
    if scored is not None:
        _write_json_lines(scored, Path(output))
    if as_json:
        _io.emit_json({"model": model, "rows": n, "output": output})
        return
    console.print(f"Wrote {n} predictions to [bold]{output}[/]")


def _refuse_read_flags_with_ray(flags: rf.ReadFlags, drop: list[str] | None) -> None:
    """--ray reads Parquet blocks as they are: a read flag would be silently ignored there."""

    def spelled(name: str, value: object) -> str:
        return "--no-header" if name == "header" and value is False else f"--{name}"

    given = [spelled(name.replace("_", "-"), value) for name, value in vars(flags).items()
             if value is not None]  # fmt: skip
    if drop:
        given.append("--drop")
    if given:
        raise UserInputError(
            f"{', '.join(given)} cannot be applied with --ray: Ray Data reads the Parquet "
            "blocks as they are. Drop the flag(s), or score without --ray."
        )


def _score(
    model: str, data: str, out: str | None, read: Any, batch_size: int, on_batch: Any,
    allow_unseen: bool, ray: str | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """Score ``data`` into ``out`` (.csv/.parquet, written atomically by ``predict_file``),
    or, without ``out``, return the scored rows (through a temporary Parquet file)."""
    import tempfile

    import pandas as pd

    from keizoku.project import predict_file

    opts = {"read": read, "batch_size": batch_size, "on_batch": on_batch,
            "allow_unseen": allow_unseen, "ray": ray}  # fmt: skip
    if out is not None:
        return predict_file(model, data, out, **opts), None
    with tempfile.TemporaryDirectory(prefix="keizoku-predict-") as tmp:
        path = Path(tmp) / "scored.parquet"
        n = predict_file(model, data, str(path), **opts)
        return n, pd.read_parquet(path)


def _write_json_lines(scored: Any, out: Path) -> None:
    """Write ``scored`` to ``out`` atomically: .jsonl one record a line, .json one array."""
    import io

    from keizoku.home import atomic_write_bytes

    buf = io.BytesIO()
    scored.to_json(buf, orient="records", lines=out.suffix.lower() == ".jsonl",
                   date_format="iso")  # fmt: skip
    atomic_write_bytes(out, buf.getvalue())


# Every command group registers itself the same way: ``module.register(app)``.
from keizoku.cli import (  # noqa: E402
    doctor,
    evaluation,
    export,
    forecast,
    keys,
    lifecycle,
    log,
    monitoring,
    rag,
    rollout,
    serving,
    ui,
)

for _group in (serving, lifecycle, rollout, monitoring, evaluation, keys, rag, doctor, ui,
               export, forecast, log):  # fmt: skip
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
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only results a script reads (--json, -o -) and errors."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Say which home, store and spec are used (stderr)."),
    ] = False,
) -> None:
    """From a raw table to a monitored model that keeps improving itself."""
    if quiet and verbose:
        raise UserInputError("-q/--quiet and -v/--verbose contradict each other: pass one.")
    _io.set_quiet(quiet)
    if verbose:
        from keizoku.home import find_home, mlflow_uri
        from keizoku.spec import spec_path

        found = find_home()
        err.print(f"home: {found.describe()}", highlight=False, soft_wrap=True)
        from keizoku.store import redact

        shared = "KEIZOKU_TRACKING_URI" in os.environ or os.environ.get("KEIZOKU_STORE")
        store = redact(mlflow_uri()) if found.exists or shared else None
        err.print(f"store: {store or '(none yet)'}", highlight=False, soft_wrap=True)
        err.print(f"spec: {spec_path() or '(none found)'}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``keizoku`` script: the exit code is ``keizoku.errors.ExitCode``."""
    from keizoku.cli._exit import invoked_only, leave, run

    leave(run(invoked_only(app, sys.argv[1:]), err))


if __name__ == "__main__":
    main()
