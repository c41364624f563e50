"""``keizoku report``: one self-contained HTML page per model version.

It reads the evidence saved with the version at training (cross-validation metrics,
curves, slices, learning curve, importance, fairness, leaderboard, model card) and,
given ``--data``, scores that file and adds the same metrics, curves, slices and
fairness measured on it. ``report_context`` turns that evidence into the plain
context of the ``evaluation`` page of :mod:`keizoku.reporting` (charts as specs drawn
there as inline SVG): no JavaScript, no network. Each section is ``<section id="...">``;
ids are in ``SECTIONS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.labels import LabelCodec, canonical
from keizoku.errors import DataError, NotFoundError
from keizoku.evaluation.evidence import EVIDENCE_FILES
from keizoku.evaluation.fairness import HasFairness, fairness_report, parse_fairness
from keizoku.evaluation.image_explain import IMAGE_EXPLANATIONS
from keizoku.evaluation.metrics import evaluate_predictions

__all__ = [
    "Evidence",
    "evaluate_file",
    "load_evidence",
    "render_report",
    "report_context",
    "write_overlay",
    "write_report",
]

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
    image_explanations: dict[str, Any] | None = None  # an image model's attribution maps


def _read(ref: str, filename: str) -> Path | None:
    from keizoku.registry.models import version_artifact

    try:
        return version_artifact(ref, filename)
    except NotFoundError:
        return None


def _json(ref: str, filename: str) -> dict[str, Any] | None:
    path = _read(ref, filename)
    return json.loads(path.read_text()) if path else None


def load_evidence(ref: str) -> Evidence:
    """The evidence files of ``ref`` (``NAME[@alias|:version]``); missing files are None."""
    from keizoku.registry.models import get_version

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
        image_explanations=_json(exact, IMAGE_EXPLANATIONS),
    )


def evaluate_file(ref: str, data: str, read: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score ``data`` (it needs the target column) → (evaluation, fairness) on it."""
    from keizoku.data.ingest import read_table
    from keizoku.data.validate import validate_frame
    from keizoku.registry.models import load_model

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
        return np.asarray(pd.to_numeric(values).to_numpy(dtype=float))
    unknown = sorted({canonical(v) for v in values if not codec.known(v)})
    if unknown:
        raise DataError(
            f"Target '{schema.target}' holds class(es) {unknown[:5]} the model was not trained "
            f"on (classes: {[canonical(c) for c in codec.classes or []]}). Remove those rows "
            "or retrain with them."
        )
    return codec.encode(list(values))


# ------------------------------------------------------------------ page context


def report_context(
    ev: Evidence,
    data_eval: dict[str, Any] | None = None,
    data_fair: dict[str, Any] | None = None,
    spec: HasFairness | None = None,
) -> dict[str, Any]:
    """What the report page shows, as plain values (see ``keizoku.reporting``).

    Sections with nothing saved are None (the page says how to record them); charts are
    specs, ``{"kind": ..., **arguments}`` of ``keizoku.reporting.charts``.
    """
    evals = [e for e in (ev.evaluation, data_eval) if e]
    target = str(ev.training.get("target", "target"))
    return {
        "title": f"keizoku model report: {ev.name}:{ev.version}",
        "summary": _summary(ev),
        "metrics": _metrics(evals, ev.training) if evals else None,
        "performance": [_performance(e, _tag(i), target) for i, e in enumerate(evals)],
        "leaderboard": _leaderboard(ev.leaderboard),
        "learning_curve": _learning(ev.evaluation),
        "slices": [_slices(e, _tag(i)) for i, e in enumerate(evals)],
        "importance": _importance(ev.importance),
        "image_attribution": _image_attribution(ev.image_explanations),
        "fairness": _fairness([ev.fairness, data_fair], spec),
        "card": _card(ev),
    }


def _tag(i: int) -> str:
    """The chart id suffix of the i-th evaluation: cross-validation first, then --data."""
    return "cv" if i == 0 else "data"


def _summary(ev: Evidence) -> list[list[Any]]:
    t = ev.training
    members = ", ".join(f"{m['family']} ×{m['weight']:g}" for m in t.get("members", []))
    return [
        ["model", f"{ev.name}:{ev.version}"],
        ["aliases", ", ".join(ev.aliases) or "-"],
        ["task", str(t.get("task", ""))],
        ["target", str(t.get("target", ""))],
        ["members", members],
        ["trained at", str(t.get("trained_at", ""))],
        ["data sha256", {"code": str(t.get("data_sha256", ""))}],
        ["schema sha256", {"code": str(t.get("schema_sha256", ""))}],
    ]


def _metrics(evals: list[dict[str, Any]], training: dict[str, Any]) -> dict[str, Any]:
    names = list(dict.fromkeys(k for e in evals for k in e.get("metrics", {})))
    return {
        "selection": str(training.get("metric", "")),
        "cv_score": training.get("cv_score"),
        "cv_std": training.get("cv_std"),
        "header": ["metric", *[f"{e['source']} ({e['n']} rows)" for e in evals]],
        "rows": [[n, *[e["metrics"].get(n) for e in evals]] for n in names],
    }


def _performance(e: dict[str, Any], tag: str, target: str) -> dict[str, Any]:
    out: dict[str, Any] = {"source": e["source"], "thresholds": None, "residuals": None}
    if e["task"] == "regression":
        out["charts"] = _regression_charts(e, tag, target)
        out["residuals"] = {**e["residual_summary"], "target": target}
        return out
    out["charts"] = _classification_charts(e, tag)
    if e.get("thresholds"):
        cols = ["threshold", "selection_rate", "precision", "recall", "f1"]
        cols += ["false_positive_rate", "accuracy"]
        out["thresholds"] = {
            "positive_class": str(e["positive_class"]),
            "header": cols,
            "rows": [[r[c] for c in cols] for r in e["thresholds"]],
        }
    return out


def _series(name: str, xs: list[float], ys: list[float], dashed: bool = False) -> dict[str, Any]:
    return {"name": name, "xs": xs, "ys": ys, "dashed": dashed}


def _classification_charts(e: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    conf = e["confusion"]
    charts: list[dict[str, Any]] = [
        {
            "kind": "heatmap",
            "chart_id": f"confusion-{tag}",
            "title": "Confusion matrix (counts)",
            "matrix": conf["matrix"],
            "labels": [str(label) for label in conf["labels"]],
            "xlabel": "Predicted class",
            "ylabel": "True class",
        }
    ]
    if not e.get("roc"):
        return charts
    unit_range = {"xr": (0, 1), "yr": (0, 1.02)}
    charts.append(
        {
            "kind": "line",
            "chart_id": f"roc-{tag}",
            "title": "ROC curve",
            "series": [
                _series(f"{c} (AUC {v['auc']:.3f})", v["fpr"], v["tpr"])
                for c, v in e["roc"].items()
            ],
            "xlabel": "False positive rate (fraction of negatives)",
            "ylabel": "True positive rate (fraction of positives)",
            "diagonal": True,
            **unit_range,
        }
    )
    charts.append(
        {
            "kind": "line",
            "chart_id": f"pr-{tag}",
            "title": "Precision-recall curve",
            "series": [
                _series(f"{c} (AP {v['average_precision']:.3f})", v["recall"], v["precision"])
                for c, v in e["pr"].items()
            ],
            "xlabel": "Recall (fraction of positives found)",
            "ylabel": "Precision (fraction of flagged that are positive)",
            **unit_range,
        }
    )
    charts.append(
        {
            "kind": "line",
            "chart_id": f"calibration-{tag}",
            "title": "Calibration (quantile bins)",
            "series": [
                _series(c, v["mean_predicted"], v["fraction_positive"])
                for c, v in e["calibration"].items()
            ],
            "xlabel": "Mean predicted probability",
            "ylabel": "Observed frequency (fraction of rows)",
            "diagonal": True,
            "markers": True,
            **unit_range,
        }
    )
    return charts


def _regression_charts(e: dict[str, Any], tag: str, target: str) -> list[dict[str, Any]]:
    r = e["residuals"]
    unit = f"{target} (target units)"
    return [
        {
            "kind": "scatter",
            "chart_id": f"predicted-actual-{tag}",
            "title": "Predicted vs actual",
            "xs": r["predicted"],
            "ys": r["actual"],
            "xlabel": f"Predicted {unit}",
            "ylabel": f"Actual {unit}",
            "diagonal": True,
        },
        {
            "kind": "scatter",
            "chart_id": f"residuals-{tag}",
            "title": "Residuals vs predicted (actual − predicted)",
            "xs": r["predicted"],
            "ys": r["residual"],
            "xlabel": f"Predicted {unit}",
            "ylabel": f"Residual {unit}",
            "zero_line": True,
        },
        {
            "kind": "histogram",
            "chart_id": f"residual-hist-{tag}",
            "title": "Residual distribution",
            "values": r["residual"],
            "xlabel": f"Residual {unit}",
        },
    ]


def _leaderboard(board: pd.DataFrame | None) -> dict[str, Any] | None:
    if board is None:
        return None
    cols = [c for c in ("trial", "model", "score", "std", "fit_time_s", "latency_ms") if c in board]
    cols += [c for c in ("size_mb", "status", "chosen", "params") if c in board]
    records = board[cols].head(40).to_dict("records")
    return {
        "trials": len(board),
        "header": cols,
        "rows": [
            [v if isinstance(v, int | float) else str(v) for v in r.values()] for r in records
        ],
        "marks": ["chosen" if r.get("chosen") else "" for r in records],
    }


def _epochs(curve: dict[str, Any]) -> dict[str, Any]:
    """A neural network's learning curve: the loss per epoch, training and validation."""
    history = curve["history"]
    epochs = [h[0] for h in history]
    series = [_series("training", epochs, [h[1] for h in history], dashed=True)]
    if any(h[2] is not None for h in history):
        series.append(_series("validation", epochs, [h[2] for h in history]))
    chart = {
        "kind": "line",
        "chart_id": "learning-curve",
        "title": f"Learning curve ({curve['family']})",
        "series": series,
        "xlabel": "Epoch",
        "ylabel": "cross-entropy loss (lower is better)",
        "markers": False,
    }
    note = (f"Loss per epoch while training; the weights of epoch {curve['best_epoch']} "
            "(lowest validation loss) are the ones kept.")  # fmt: skip
    return {"chart": chart, "note": note}


def _learning(evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    if (evaluation or {}).get("epoch_curve"):
        return _epochs(evaluation["epoch_curve"])  # type: ignore[index]
    lc = (evaluation or {}).get("learning_curve")
    if not lc or not lc.get("points"):
        return None
    pts = lc["points"]
    xs = [p["rows"] for p in pts]
    better = "higher" if lc["greater_is_better"] else "lower"
    chart = {
        "kind": "line",
        "chart_id": "learning-curve",
        "title": f"Learning curve ({lc['family']})",
        "series": [
            _series("training", xs, [p["train"] for p in pts], dashed=True),
            _series("validation", xs, [p["valid"] for p in pts]),
        ],
        "xlabel": "Training rows",
        "ylabel": f"{lc['metric']} ({better} is better)",
        "markers": True,
    }
    return {"chart": chart, "validation_rows": lc["validation_rows"], "complete": lc["complete"],
            "note": None}  # fmt: skip


def _slices(e: dict[str, Any], tag: str) -> dict[str, Any]:
    sl = e.get("slices") or {}
    rows = sl.get("slices") or []
    out: dict[str, Any] = {"source": e["source"], "chart": None}
    if not rows:
        return out
    out["min_support"] = sl["min_support"]
    out["chart"] = {
        "kind": "bar",
        "chart_id": f"slices-{tag}",
        "title": f"Error by segment, worst first ({sl['error_name']})",
        "labels": [f"{r['feature']} = {r['segment']}" for r in rows],
        "values": [r["error"] for r in rows],
        "xlabel": f"{sl['error_name']} (dashed line: overall {sl['overall_error']:.3g})",
        "reference": sl["overall_error"],
    }
    out["header"] = ["feature", "segment", "rows", sl["error_name"]]
    out["rows"] = [[str(r["feature"]), str(r["segment"]), r["count"], r["error"]] for r in rows]
    return out


def _importance(imp: dict[str, Any] | None) -> dict[str, Any] | None:
    if not imp:
        return None
    feats = imp["features"][:15]
    chart = {
        "kind": "bar",
        "chart_id": "importance",
        "title": "Global feature importance",
        "labels": [str(f["feature"]) for f in feats],
        "values": [f["share"] for f in feats],
        "xlabel": "Share of importance (fraction; all features sum to 1)",
    }
    members = [[m["family"], m["weight"], m["method"]] for m in imp["members"]]
    return {"chart": chart, "members": members, "note": str(imp.get("note", ""))}


def _image_attribution(saved: dict[str, Any] | None) -> dict[str, Any] | None:
    """An image model's explanations: the mean |attribution| per class over its mean image
    (the global view), then hold-out images with their maps (right and wrong answers)."""
    if not saved:
        return None

    def where(focus: dict[str, Any]) -> str:
        if focus.get("top_share") is None:
            return "no attribution"
        row, col = focus["centre"]
        return f"top 10 % of pixels: {focus['top_share']:.0%}; centre ({row:.1f}, {col:.1f})"

    classes = [
        {"kind": "overlay", "chart_id": f"attribution-class-{i}",
         "title": f"class {c['class']} ({c['n']} images)", "image": c["mean_image"],
         "attribution": c["mean_abs_attribution"], "signed": False,
         "caption": where(c["focus"])}
        for i, c in enumerate(saved.get("classes", []))
    ]  # fmt: skip
    examples = [
        {"kind": "overlay", "chart_id": f"attribution-{e['kind']}-{i}",
         "title": f"{e['name']}: {e['true']} → {e['predicted']} ({e['confidence']:.0%})",
         "image": e["image"], "attribution": e["attribution"], "signed": True,
         "caption": f"{'right' if e['kind'] == 'right' else 'WRONG'}; {where(e['focus'])}"}
        for i, e in enumerate(saved.get("examples", []))
    ]  # fmt: skip
    return {"method": saved.get("method", ""), "classes": classes, "examples": examples,
            "examples_source": saved.get("examples_source", "")}  # fmt: skip


def _fairness_column(
    col: str, body: dict[str, Any], limits: dict[str, float], tag: str
) -> dict[str, Any]:
    groups = body["groups"]
    metric_cols = [k for k in groups[0] if k != "group"] if groups else []
    key = "selection_rate" if "selection_rate" in metric_cols else metric_cols[-1]
    unit = "fraction of rows" if "rate" in key else "target units"
    gaps, marks = [], []
    for gap, value in body["gaps"].items():
        limit = limits.get(gap)
        over = value is not None and limit is not None and value > limit
        status: Any = {"mark": "bad", "text": "exceeds"} if over else ("within" if limit else "-")
        gaps.append([gap, value, "-" if limit is None else limit, status])
        marks.append("bad" if over else "")
    return {
        "name": col,
        "header": ["group", *metric_cols],
        "rows": [[str(g["group"]), *[g[k] for k in metric_cols]] for g in groups],
        "chart": {
            "kind": "bar",
            "chart_id": f"fairness-{tag}-{col}",
            "title": f"{key.replace('_', ' ').capitalize()} by {col}",
            "labels": [str(g["group"]) for g in groups],
            "values": [g[key] or 0.0 for g in groups],
            "xlabel": f"{key.replace('_', ' ')} ({unit})",
        },
        "gaps": gaps,
        "marks": marks,
    }


def _fairness(
    fairs: list[dict[str, Any] | None], spec: HasFairness | None
) -> dict[str, Any] | None:
    limits = parse_fairness(spec.fairness if spec else None).limits()
    shown = [f for f in fairs if f and f.get("columns")]
    if not shown:
        return None
    runs = [
        {
            "source": f["source"],
            "columns": [
                _fairness_column(col, body, limits, _tag(i)) for col, body in f["columns"].items()
            ],
        }
        for i, f in enumerate(shown)
    ]
    return {"rule": shown[0].get("selection_rule"), "runs": runs}


def _card(ev: Evidence) -> dict[str, Any] | None:
    from keizoku.evaluation.card import lineage

    if ev.card is None:
        return None
    rows = [
        [v["version"], ", ".join(v["aliases"]) or "-", str(v["metric"]), v["cv_score"]]
        for v in lineage(ev.name)
    ]
    marks = ["chosen" if r[0] == ev.version else "" for r in rows]
    return {"markdown": ev.card, "lineage": rows, "marks": marks}


# ------------------------------------------------------------------ entry points


def render_report(
    ev: Evidence,
    data_eval: dict[str, Any] | None = None,
    data_fair: dict[str, Any] | None = None,
    spec: HasFairness | None = None,
) -> str:
    """The report as one HTML string."""
    from keizoku.reporting import render

    return render("evaluation", report_context(ev, data_eval, data_fair, spec))


def write_overlay(path: str | Path, image: Any, attribution: Any) -> Path:
    """An image model's attribution map over its image as a PNG at ``path``, atomically
    (``keizoku explain --image --overlay``; the report draws the same overlay)."""
    from keizoku.home import atomic_write_bytes
    from keizoku.reporting.charts import overlay_png

    target = Path(path)
    atomic_write_bytes(target, overlay_png(image, attribution))
    return target


def write_report(
    ref: str,
    out: str | Path,
    data: str | None = None,
    spec: HasFairness | None = None,
    read: Any = None,
) -> Path:
    """Write the report of ``ref`` (optionally evaluated on ``data``) to ``out``."""
    from keizoku.reporting import write

    if _json(ref, "clusters.json") is not None:  # a clustering: its own page
        from keizoku.clustering.report import write_cluster_report

        return write_cluster_report(ref, out)
    ev = load_evidence(ref)
    exact = f"{ev.name}:{ev.version}"
    data_eval, data_fair = evaluate_file(exact, data, read) if data else (None, None)
    return write("evaluation", report_context(ev, data_eval, data_fair, spec), out)
