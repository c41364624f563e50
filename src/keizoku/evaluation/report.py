"""``keizoku report``: one self-contained HTML page per model version.

It reads the evidence saved with the version at training (cross-validation metrics,
curves, slices, learning curve, importance, fairness, leaderboard, model card) and,
given ``--data``, scores that file and adds the same metrics, curves, slices and
fairness measured on it. Charts are inline SVG (:mod:`keizoku.evaluation.plots`):
no JavaScript, no network. Each section is ``<section id="...">``; ids are in
``SECTIONS``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.labels import LabelCodec, canonical
from keizoku.errors import DataError, NotFoundError
from keizoku.evaluation import plots
from keizoku.evaluation.evidence import EVIDENCE_FILES
from keizoku.evaluation.fairness import fairness_report, parse_fairness
from keizoku.evaluation.metrics import evaluate_predictions
from keizoku.spec import Spec

__all__ = ["Evidence", "load_evidence", "evaluate_file", "render_report", "write_report"]

SECTIONS = (
    "summary",
    "metrics",
    "performance",
    "leaderboard",
    "learning-curve",
    "slices",
    "importance",
    "fairness",
    "model-card",
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;
max-width:1100px}
h1{margin-bottom:.2rem}section{margin:2rem 0}h3{margin-top:1.2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde8e8}.muted{color:#666}.bad{color:#b00020;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
svg.chart{border:1px solid #eee;background:#fff}
svg.chart text{font-size:11px;fill:#333}
svg.chart text.chart-title{font-size:13px;font-weight:600}
svg.chart text.axis-label{font-size:12px}
svg.chart rect.bar{fill:#4c78a8}svg.chart circle.point{fill:#4c78a8;fill-opacity:.5}
svg.chart line.axis,svg.chart line.tick{stroke:#333}
svg.chart line.grid{stroke:#eee}
svg.chart line.reference{stroke:#999;stroke-dasharray:4,3}
svg.chart polyline.line{fill:none;stroke-width:2}
.card{border:1px solid #ddd;padding:0 1rem;background:#fafafa}
"""


@dataclass
class Evidence:
    """What was saved with a version, plus its registry record."""

    name: str
    version: int
    aliases: list[str]
    training: dict[str, Any]
    evaluation: dict[str, Any] | None
    importance: dict[str, Any] | None
    fairness: dict[str, Any] | None
    leaderboard: pd.DataFrame | None
    card: str | None


def _read(ref: str, filename: str) -> Path | None:
    from keizoku.registry.store import version_artifact

    try:
        return version_artifact(ref, filename)
    except NotFoundError:
        return None


def _json(ref: str, filename: str) -> dict[str, Any] | None:
    path = _read(ref, filename)
    return json.loads(path.read_text()) if path else None


def load_evidence(ref: str) -> Evidence:
    """The evidence files of ``ref`` (``NAME[@alias|:version]``); missing files are None."""
    from keizoku.registry.store import get_version

    info = get_version(ref)
    exact = info.ref
    board = _read(exact, "leaderboard.csv")
    card = _read(exact, EVIDENCE_FILES["model_card"])
    return Evidence(
        name=info.name,
        version=info.version,
        aliases=info.aliases,
        training=_json(exact, "training.json") or {},
        evaluation=_json(exact, EVIDENCE_FILES["evaluation"]),
        importance=_json(exact, EVIDENCE_FILES["importance"]),
        fairness=_json(exact, EVIDENCE_FILES["fairness"]),
        leaderboard=pd.read_csv(board) if board else None,
        card=card.read_text() if card else None,
    )


def evaluate_file(ref: str, data: str, read: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score ``data`` (it needs the target column) → (evaluation, fairness) on it."""
    from keizoku.data.ingest import read_table
    from keizoku.data.validate import validate_frame
    from keizoku.registry.store import load_model

    model = load_model(ref)
    schema = model.schema
    frame = read_table(data, read)
    if schema.target not in frame:
        raise DataError(
            f"'{data}' has no target column '{schema.target}': a report on data needs the "
            "true values. Add the column, or run `keizoku report` without --data."
        )
    validate_frame(schema, frame.drop(columns=[schema.target]))
    frame = frame[frame[schema.target].notna()].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"'{data}' has no row with a value in target '{schema.target}'.")
    y = _encode(frame[schema.target], schema)
    pred = model.predict_raw(frame)
    source = f"data file {Path(data).name}"
    task = str(model.task)
    evaluation = evaluate_predictions(task, y, pred, model.classes, frame, schema, source)
    return evaluation, fairness_report(task, y, pred, frame, schema, source)


def _encode(values: pd.Series, schema: Any) -> np.ndarray:
    codec = LabelCodec.from_schema(schema)
    if codec.is_regression:
        return pd.to_numeric(values).to_numpy(dtype=float)
    unknown = sorted({canonical(v) for v in values if not codec.known(v)})
    if unknown:
        raise DataError(
            f"Target '{schema.target}' holds class(es) {unknown[:5]} the model was not trained "
            f"on (classes: {[canonical(c) for c in codec.classes or []]}). Remove those rows "
            "or retrain with them."
        )
    return codec.encode(list(values))


# ------------------------------------------------------------------ helpers


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return escape(str(v))


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(
            f'<td class="num">{_num(c)}</td>' if isinstance(c, int | float) else f"<td>{c}</td>"
            for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def _missing(what: str) -> str:
    return (
        f'<p class="muted">No {escape(what)} was saved with this version; retrain it with '
        "<code>keizoku train</code> to record it.</p>"
    )


# ------------------------------------------------------------------ sections


def _summary(ev: Evidence) -> str:
    t = ev.training
    members = ", ".join(f"{m['family']} ×{m['weight']:g}" for m in t.get("members", []))
    rows = [
        ["model", escape(f"{ev.name}:{ev.version}")],
        ["aliases", escape(", ".join(ev.aliases) or "-")],
        ["task", escape(str(t.get("task", "")))],
        ["target", escape(str(t.get("target", "")))],
        ["members", escape(members)],
        ["trained at", escape(str(t.get("trained_at", "")))],
        ["data sha256", f"<code>{escape(str(t.get('data_sha256', '')))}</code>"],
        ["schema sha256", f"<code>{escape(str(t.get('schema_sha256', '')))}</code>"],
    ]
    return _section("summary", "Summary", _table(["field", "value"], rows))


def _metrics(evals: list[dict[str, Any]], training: dict[str, Any]) -> str:
    names = list(dict.fromkeys(k for e in evals for k in e.get("metrics", {})))
    header = ["metric", *[f"{e['source']} ({e['n']} rows)" for e in evals]]
    rows = [[escape(n), *[e["metrics"].get(n) for e in evals]] for n in names]
    lead = (
        f"<p>Selection metric <b>{escape(str(training.get('metric', '')))}</b>: CV "
        f"{_num(training.get('cv_score'))} ± {_num(training.get('cv_std'))}.</p>"
    )
    return _section("metrics", "Metrics", lead + _table(header, rows))


def _classification_charts(e: dict[str, Any], tag: str) -> str:
    conf = e["confusion"]
    charts = [
        plots.heatmap(
            f"confusion-{tag}",
            "Confusion matrix (counts)",
            conf["matrix"],
            conf["labels"],
            "Predicted class",
            "True class",
        )
    ]
    unit = "fraction of rows"
    if e.get("roc"):
        roc = [
            plots.Series(f"{c} (AUC {v['auc']:.3f})", v["fpr"], v["tpr"])
            for c, v in e["roc"].items()
        ]
        charts.append(
            plots.line_chart(
                f"roc-{tag}",
                "ROC curve",
                roc,
                "False positive rate (fraction of negatives)",
                "True positive rate (fraction of positives)",
                xr=(0, 1),
                yr=(0, 1.02),
                diagonal=True,
            )
        )
        pr = [
            plots.Series(f"{c} (AP {v['average_precision']:.3f})", v["recall"], v["precision"])
            for c, v in e["pr"].items()
        ]
        charts.append(
            plots.line_chart(
                f"pr-{tag}",
                "Precision-recall curve",
                pr,
                "Recall (fraction of positives found)",
                "Precision (fraction of flagged that are positive)",
                xr=(0, 1),
                yr=(0, 1.02),
            )
        )
        cal = [
            plots.Series(c, v["mean_predicted"], v["fraction_positive"])
            for c, v in e["calibration"].items()
        ]
        charts.append(
            plots.line_chart(
                f"calibration-{tag}",
                "Calibration (quantile bins)",
                cal,
                "Mean predicted probability",
                f"Observed frequency ({unit})",
                xr=(0, 1),
                yr=(0, 1.02),
                diagonal=True,
                markers=True,
            )
        )
    out = f'<div class="charts">{"".join(charts)}</div>'
    if e.get("thresholds"):
        cols = ["threshold", "selection_rate", "precision", "recall", "f1"]
        cols += ["false_positive_rate", "accuracy"]
        rows = [[r[c] for c in cols] for r in e["thresholds"]]
        out += (
            f"<h4>Threshold table (positive class '{escape(e['positive_class'])}' when "
            "P ≥ threshold)</h4>" + _table(cols, rows)
        )
    return out


def _regression_charts(e: dict[str, Any], tag: str, target: str) -> str:
    r = e["residuals"]
    unit = f"{target} (target units)"
    charts = [
        plots.scatter_chart(
            f"predicted-actual-{tag}",
            "Predicted vs actual",
            r["predicted"],
            r["actual"],
            f"Predicted {unit}",
            f"Actual {unit}",
            diagonal=True,
        ),
        plots.scatter_chart(
            f"residuals-{tag}",
            "Residuals vs predicted (actual − predicted)",
            r["predicted"],
            r["residual"],
            f"Predicted {unit}",
            f"Residual {unit}",
            zero_line=True,
        ),
        plots.histogram(
            f"residual-hist-{tag}", "Residual distribution", r["residual"], f"Residual {unit}"
        ),
    ]
    s = e["residual_summary"]
    summary = (
        f"<p>Residual mean {_num(s['mean'])}, std {_num(s['std'])}, 5–95 % range "
        f"{_num(s['p05'])} to {_num(s['p95'])} ({escape(target)} units).</p>"
    )
    return f'<div class="charts">{"".join(charts)}</div>{summary}'


def _performance(evals: list[dict[str, Any]], target: str) -> str:
    parts = []
    for i, e in enumerate(evals):
        tag = "cv" if i == 0 else "data"
        parts.append(f"<h3>On {escape(e['source'])}</h3>")
        if e["task"] == "regression":
            parts.append(_regression_charts(e, tag, target))
        else:
            parts.append(_classification_charts(e, tag))
    return _section("performance", "Performance", "\n".join(parts))


def _leaderboard(board: pd.DataFrame | None) -> str:
    if board is None:
        return _section("leaderboard", "Search leaderboard", _missing("leaderboard"))
    cols = [c for c in ("trial", "model", "score", "std", "fit_time_s", "latency_ms") if c in board]
    cols += [c for c in ("size_mb", "status", "chosen", "params") if c in board]
    rows = []
    for rec in board[cols].head(40).to_dict("records"):
        rows.append([v if isinstance(v, int | float) else escape(str(v)) for v in rec.values()])
    marks = ["chosen" if r.get("chosen") else "" for r in board[cols].head(40).to_dict("records")]
    note = f"<p class='muted'>{len(board)} trials; score in the metric's own units.</p>"
    return _section("leaderboard", "Search leaderboard", note + _table(cols, rows, marks))


def _learning(evaluation: dict[str, Any] | None) -> str:
    lc = (evaluation or {}).get("learning_curve")
    if not lc or not lc.get("points"):
        return _section("learning-curve", "Learning curve", _missing("learning curve"))
    pts = lc["points"]
    xs = [p["rows"] for p in pts]
    chart = plots.line_chart(
        "learning-curve",
        f"Learning curve ({lc['family']})",
        [
            plots.Series("training", xs, [p["train"] for p in pts], dashed=True),
            plots.Series("validation", xs, [p["valid"] for p in pts]),
        ],
        "Training rows",
        f"{lc['metric']} ({'higher' if lc['greater_is_better'] else 'lower'} is better)",
        markers=True,
    )
    note = (
        f"<p class='muted'>Computed at training: the heaviest member's configuration "
        f"refitted on 20–100 % of an 80 % split, scored on the other {lc['validation_rows']} "
        f"rows{'' if lc['complete'] else ' (cut short by its time budget)'}.</p>"
    )
    return _section("learning-curve", "Learning curve", chart + note)


def _slices(evals: list[dict[str, Any]]) -> str:
    parts = []
    for i, e in enumerate(evals):
        sl = e.get("slices") or {}
        rows = sl.get("slices") or []
        parts.append(f"<h3>On {escape(e['source'])}</h3>")
        if not rows:
            parts.append("<p class='muted'>No segment reached the minimum support.</p>")
            continue
        labels = [f"{r['feature']} = {r['segment']}" for r in rows]
        chart = plots.bar_chart(
            f"slices-{'cv' if i == 0 else 'data'}",
            f"Error by segment, worst first ({sl['error_name']})",
            labels,
            [r["error"] for r in rows],
            f"{sl['error_name']} (dashed line: overall {sl['overall_error']:.3g})",
            reference=sl["overall_error"],
        )
        table = _table(
            ["feature", "segment", "rows", sl["error_name"]],
            [[escape(r["feature"]), escape(r["segment"]), r["count"], r["error"]] for r in rows],
        )
        parts.append(
            f"<p class='muted'>Segments: each categorical level and numeric quantile bin with "
            f"at least {sl['min_support']} rows.</p>{chart}{table}"
        )
    return _section("slices", "Worst slices", "\n".join(parts))


def _importance(imp: dict[str, Any] | None) -> str:
    if not imp:
        return _section("importance", "Feature importance", _missing("importance"))
    feats = imp["features"][:15]
    chart = plots.bar_chart(
        "importance",
        "Global feature importance",
        [f["feature"] for f in feats],
        [f["share"] for f in feats],
        "Share of importance (fraction; all features sum to 1)",
    )
    rows = [[escape(m["family"]), m["weight"], escape(m["method"])] for m in imp["members"]]
    table = _table(["member", "weight", "method"], rows)
    note = f"<p class='muted'>{escape(imp.get('note', ''))}.</p>"
    return _section("importance", "Feature importance", chart + table + note)


def _fairness_one(fair: dict[str, Any], limits: dict[str, float], tag: str) -> str:
    parts = [f"<h3>On {escape(fair['source'])}</h3>"]
    for col, body in fair["columns"].items():
        groups = body["groups"]
        metric_cols = [k for k in groups[0] if k != "group"] if groups else []
        rows = [[escape(g["group"]), *[g[k] for k in metric_cols]] for g in groups]
        key = "selection_rate" if "selection_rate" in metric_cols else metric_cols[-1]
        chart = plots.bar_chart(
            f"fairness-{tag}-{col}",
            f"{key.replace('_', ' ').capitalize()} by {col}",
            [g["group"] for g in groups],
            [g[key] or 0.0 for g in groups],
            f"{key.replace('_', ' ')} ({'fraction of rows' if 'rate' in key else 'target units'})",
        )
        gap_rows, marks = [], []
        for gap, value in body["gaps"].items():
            limit = limits.get(gap)
            over = value is not None and limit is not None and value > limit
            status = "<span class='bad'>exceeds</span>" if over else ("within" if limit else "-")
            gap_rows.append([escape(gap), value, "-" if limit is None else limit, status])
            marks.append("bad" if over else "")
        parts.append(
            f"<h4>Sensitive column '{escape(col)}'</h4>"
            + _table(["group", *metric_cols], rows)
            + chart
            + _table(["gap", "value", "limit (spec)", "status"], gap_rows, marks)
        )
    return "\n".join(parts)


def _fairness(fairs: list[dict[str, Any] | None], spec: Spec | None) -> str:
    limits = parse_fairness(spec.fairness if spec else None).limits()
    shown = [f for f in fairs if f and f.get("columns")]
    if not shown:
        body = (
            "<p class='muted'>No sensitive column: fairness was not measured. Mark one with "
            "<code>keizoku init --sensitive COL</code>.</p>"
        )
        return _section("fairness", "Fairness", body)
    rule = shown[0].get("selection_rule")
    note = f"<p class='muted'>Selected = {escape(rule)}.</p>" if rule else ""
    parts = [_fairness_one(f, limits, "cv" if i == 0 else "data") for i, f in enumerate(shown)]
    return _section("fairness", "Fairness", note + "\n".join(parts))


def _card(ev: Evidence) -> str:
    from markdown_it import MarkdownIt

    from keizoku.evaluation.card import lineage

    if ev.card is None:
        return _section("model-card", "Model card", _missing("model card"))
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(ev.card)
    rows = [
        [v["version"], escape(", ".join(v["aliases"]) or "-"), escape(v["metric"]), v["cv_score"]]
        for v in lineage(ev.name)
    ]
    marks = ["chosen" if r[0] == ev.version else "" for r in rows]
    now = "<h3>Version lineage now</h3>" + _table(
        ["version", "aliases", "metric", "CV"], rows, marks
    )
    return _section("model-card", "Model card", f'<div class="card">{html}</div>{now}')


def render_report(
    ev: Evidence,
    data_eval: dict[str, Any] | None = None,
    data_fair: dict[str, Any] | None = None,
    spec: Spec | None = None,
) -> str:
    """The report as one HTML string."""
    evals = [e for e in (ev.evaluation, data_eval) if e]
    target = str(ev.training.get("target", "target"))
    title = f"keizoku model report: {ev.name}:{ev.version}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _summary(ev),
        _metrics(evals, ev.training)
        if evals
        else _section("metrics", "Metrics", _missing("metrics")),
        _performance(evals, target) if evals else _section("performance", "Performance", ""),
        _leaderboard(ev.leaderboard),
        _learning(ev.evaluation),
        _slices(evals),
        _importance(ev.importance),
        _fairness([ev.fairness, data_fair], spec),
        _card(ev),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(
    ref: str,
    out: str | Path,
    data: str | None = None,
    spec: Spec | None = None,
    read: Any = None,
) -> Path:
    """Write the report of ``ref`` (optionally evaluated on ``data``) to ``out``."""
    from keizoku.home import atomic_write_text

    ev = load_evidence(ref)
    exact = f"{ev.name}:{ev.version}"
    data_eval, data_fair = evaluate_file(exact, data, read) if data else (None, None)
    html = render_report(ev, data_eval, data_fair, spec)
    atomic_write_text(out, html)
    return Path(out)
