"""The model card: one Markdown page a reviewer reads before a version serves.

It is rendered from the evidence saved with the version (``training.json``,
``evaluation.json``, ``importance.json``, ``fairness.json``) plus the registry's
lineage, so the same function writes ``model_card.md`` at training and the card
section of ``keizoku report`` (with fresh lineage) later.

*Intended use* comes from ``intended_use.md`` in the working directory when
``keizoku train`` runs (write it once per project); otherwise the card carries a
placeholder text for the owner to edit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["render_card", "lineage", "intended_use", "DEFAULT_INTENDED_USE", "INTENDED_USE_FILE"]

INTENDED_USE_FILE = "intended_use.md"
DEFAULT_INTENDED_USE = (
    "_Edit this section (write `intended_use.md` next to `keizoku.yaml` before training)._\n\n"
    "- **Purpose:** <what decision this model supports, and for whom>\n"
    "- **Users:** <who calls it, through which system>\n"
    "- **Out of scope:** <populations, periods or decisions it must not be used for>\n"
    "- **Human oversight:** <who reviews its outputs, and when>"
)
GAP_WARN = 0.1


def intended_use(base: Path | None = None) -> str:
    path = (base or Path.cwd()) / INTENDED_USE_FILE
    return path.read_text().strip() if path.is_file() else DEFAULT_INTENDED_USE


def lineage(name: str) -> list[dict[str, Any]]:
    """Every registered version of ``name``: version, aliases, metric, score, created."""
    from keizoku.errors import NotFoundError
    from keizoku.registry.models import list_versions

    try:
        versions = list_versions(name)
    except NotFoundError:
        return []
    return [
        {
            "version": v.version,
            "aliases": v.aliases,
            "metric": v.tags.get("keizoku.metric", ""),
            "cv_score": v.tags.get("keizoku.cv_score", ""),
            "data_sha256": v.tags.get("keizoku.data_sha256", ""),
            "created": v.created,
        }
        for v in versions
    ]


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _metrics(evaluation: dict[str, Any]) -> list[str]:
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_num(v)} |" for k, v in evaluation.get("metrics", {}).items()]
    return lines


def _slices(evaluation: dict[str, Any], limit: int = 5) -> list[str]:
    sl = evaluation.get("slices") or {}
    rows = sl.get("slices") or []
    if not rows:
        return ["No segment reached the minimum support."]
    lines = [
        f"Overall {sl['error_name']}: {_num(sl['overall_error'])} "
        f"(segments with at least {sl['min_support']} rows).",
        "",
        f"| feature | segment | rows | {sl['error_name']} |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['feature']} | {r['segment']} | {r['count']} | {_num(r['error'])} |"
        for r in rows[:limit]
    ]
    return lines


def _fairness(fairness: dict[str, Any] | None) -> list[str]:
    if not fairness or not fairness.get("columns"):
        return [
            "No sensitive column was declared; fairness was not measured. Mark one with "
            "`keizoku init --sensitive COL` (or `role: sensitive` in schema.yaml)."
        ]
    lines = [f"Measured on {fairness.get('source', '')} ({fairness.get('n', '?')} rows).", ""]
    lines += ["| sensitive column | gap | value |", "|---|---|---|"]
    for col, body in fairness["columns"].items():
        lines += [f"| {col} | {gap} | {_num(v)} |" for gap, v in body["gaps"].items()]
    return lines


def _top_features(importance: dict[str, Any] | None, limit: int = 8) -> list[str]:
    if not importance:
        return ["Not computed."]
    feats = importance.get("features", [])[:limit]
    methods = sorted({m["method"] for m in importance.get("members", [])})
    lines = [f"Method: {'; '.join(methods)}.", ""]
    lines += [f"{i + 1}. {f['feature']} ({f['share']:.1%})" for i, f in enumerate(feats)]
    return lines


def _limits(
    training: dict[str, Any], evaluation: dict[str, Any], fairness: dict[str, Any] | None
) -> list[str]:
    out = []
    n = evaluation.get("n", 0)
    if n and n < 1000:
        out.append(f"Trained on {n} rows: estimates carry wide uncertainty.")
    sl = (evaluation.get("slices") or {}).get("slices") or []
    overall = (evaluation.get("slices") or {}).get("overall_error")
    for r in sl[:3]:
        if overall and r["error"] > 1.5 * overall:
            out.append(
                f"Weaker on {r['feature']} = {r['segment']}: {_num(r['error'])} vs "
                f"{_num(overall)} overall."
            )
    for col, body in ((fairness or {}).get("columns") or {}).items():
        for gap, v in body["gaps"].items():
            if v is not None and v > GAP_WARN:
                out.append(f"Unequal treatment by '{col}': {gap} = {_num(v)}.")
    curve = (evaluation.get("learning_curve") or {}).get("points") or []
    if len(curve) >= 2 and curve[-1]["valid"] is not None and curve[-2]["valid"] is not None:
        gain = curve[-1]["valid"] - curve[-2]["valid"]
        better = (
            gain > 0
            if (evaluation.get("learning_curve") or {}).get("greater_is_better")
            else gain < 0
        )
        if better and abs(gain) > 0.01 * max(abs(curve[-1]["valid"]), 1e-9):
            out.append("The learning curve still rises: more data is likely to help.")
    out.append(
        "Scores come from cross-validation on the training data; they hold only for data "
        "drawn like it (see the data period and fingerprint)."
    )
    return [f"- {line}" for line in out]


def _lineage(versions: list[dict[str, Any]], current: int | None) -> list[str]:
    if not versions:
        return ["First version of this model."]
    lines = ["| version | aliases | metric | CV score |", "|---|---|---|---|"]
    for v in versions:
        mark = " (this)" if v["version"] == current else ""
        aliases = ", ".join(v["aliases"]) or "-"
        lines.append(f"| {v['version']}{mark} | {aliases} | {v['metric']} | {v['cv_score']} |")
    champion = [v["version"] for v in versions if "champion" in v["aliases"]]
    lines += ["", f"Champion: version {champion[0]}." if champion else "No champion."]
    return lines


def render_card(
    training: dict[str, Any],
    evaluation: dict[str, Any],
    importance: dict[str, Any] | None,
    fairness: dict[str, Any] | None,
    versions: list[dict[str, Any]],
    version: int | None,
    use: str,
) -> str:
    """The card as Markdown."""
    name = training.get("project", "model")
    title = f"{name}:{version}" if version is not None else f"{name} (new version)"
    period = evaluation.get("data_period") or {}
    members = ", ".join(
        f"{m['family']} (weight {m['weight']:g})" for m in training.get("members", [])
    )
    parts = [
        f"# Model card: {title}",
        "",
        "## Intended use",
        use,
        "",
        "## Model",
        f"- Task: {training.get('task')} on target `{training.get('target')}`",
        f"- Members: {members or 'n/a'}",
        f"- Trained at: {training.get('trained_at', 'n/a')}",
        "",
        "## Data",
        f"- Rows with a target: {evaluation.get('n', 'n/a')}",
        f"- Data fingerprint (keizoku.data_sha256): `{training.get('data_sha256', 'n/a')}`",
        f"- Schema fingerprint (keizoku.schema_sha256): `{training.get('schema_sha256', 'n/a')}`",
    ]
    if period:
        parts += [f"- Period ({col}): {p['min']} to {p['max']}" for col, p in period.items()]
    else:
        parts.append("- Period: no datetime column")
    parts += [
        "",
        f"## Metrics ({evaluation.get('source', 'cross-validation')})",
        f"Selection metric: {training.get('metric')} = {_num(training.get('cv_score'))} "
        f"± {_num(training.get('cv_std'))} (CV).",
        "",
        *_metrics(evaluation),
        "",
        "## Worst slices",
        *_slices(evaluation),
        "",
        "## Fairness",
        *_fairness(fairness),
        "",
        "## Explanations: top features",
        *_top_features(importance),
        "",
        "## Limits",
        *_limits(training, evaluation, fairness),
        "",
        "## Version lineage",
        *_lineage(versions, version),
        "",
    ]
    return "\n".join(parts)
