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

__all__ = [
    "DEFAULT_INTENDED_USE",
    "INTENDED_USE_FILE",
    "intended_use",
    "lineage",
    "render_card",
    "render_image_card",
]

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


# ------------------------------------------------------------------ image models


def _image_data(training: dict[str, Any]) -> list[str]:
    ims = training.get("images") or {}
    counts = ims.get("class_counts") or {}
    h, w = ims.get("size") or ("?", "?")
    train = sum(c["training"] for c in counts.values())
    held = sum(c["holdout"] for c in counts.values())
    source = "folder of class subfolders" if ims.get("source") == "folder" else "CSV of paths"
    lines = [
        f"- Images: {train + held} ({train} for training, {held} kept out as the hold-out), "
        f"from a {source}",
        f"- Read as {h}x{w} {'RGB (three channels)' if ims.get('colour') else 'grayscale'}, "
        "pixel values in [0, 1]",
        f"- Data fingerprint (keizoku.data_sha256): `{training.get('data_sha256', 'n/a')}`",
        "",
        "| class | training images | hold-out images |",
        "|---|---|---|",
    ]
    lines += [f"| {c} | {n['training']} | {n['holdout']} |" for c, n in counts.items()]
    return lines


def _image_model(training: dict[str, Any]) -> list[str]:
    arch = training.get("architecture") or {}
    c, hidden = int(arch.get("channels", 0)), arch.get("hidden", "?")
    start = arch.get("weights") or "trained from scratch (random initial weights)"
    return [
        f"- Task: {training.get('task')} image classification of `{training.get('target')}`",
        f"- Network: ImageCNN, two blocks of two 3x3 convolutions ({c} then {2 * c} channels; "
        f"batch norm, ReLU, 2x2 max-pool), a global average pool, a {hidden}-wide "
        f"penultimate layer (ReLU), dropout {_num(arch.get('dropout'))}, a "
        f"{arch.get('n_out', '?')}-way class layer; {int(arch.get('parameters', 0)):,} "
        "parameters",
        f"- Starting weights: {start}",
        f"- Trained at: {training.get('trained_at', 'n/a')}",
    ]


def _image_training(training: dict[str, Any]) -> list[str]:
    r = training.get("recipe") or {}
    aug = r.get("augmentation") or {}
    tried = ", ".join(str(t) for t in r.get("trials", [])) or "n/a"
    history = training.get("history") or []
    best = training.get("best_epoch")
    best_val = next((h[2] for h in history if h[0] == best), None)
    return [
        f"- Widths tried (first block's channels, one trial each): {tried}; kept "
        f"{training.get('channels')} (validation accuracy {_num(training.get('val_accuracy'))})",
        f"- Validation: {r.get('validation_share', 0.15):.0%} of the training images "
        "(stratified), for early stopping and the choice of width",
        f"- Epochs: at most {r.get('max_epochs', '?')}, stopped after {r.get('patience', '?')} "
        f"without a lower validation loss; ran {len(history)}, kept the weights of epoch "
        f"{best} (validation loss {_num(best_val)})",
        f"- Optimiser: AdamW, learning rate {_num(r.get('lr'))}, weight decay "
        f"{_num(r.get('weight_decay'))}, batches of {r.get('batch_size', '?')}",
        f"- Augmentation (training batches only): rotation up to ±{_num(aug.get('rotate'))}°, "
        f"shift up to ±{_num(aug.get('shift'))} of the image size, Gaussian pixel noise "
        f"σ {_num(aug.get('noise'))}",
    ]


def _image_curve(training: dict[str, Any], limit: int = 12) -> list[str]:
    history = training.get("history") or []
    if not history:
        return ["Not recorded."]
    step = max(1, math.ceil(len(history) / limit))
    best = training.get("best_epoch")
    shown = [h for i, h in enumerate(history) if i % step == 0 or h[0] in (best, history[-1][0])]
    lines = ["Cross-entropy loss per epoch (lower is better); `*` marks the epoch kept.", "",
             "| epoch | training loss | validation loss |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {h[0]}{' *' if h[0] == best else ''} | {_num(h[1])} | {_num(h[2])} |"
              for h in shown]  # fmt: skip
    return lines


def _image_explanations(explanations: dict[str, Any] | None) -> list[str]:
    if not explanations:
        return ["Not computed."]
    lines = [f"Method: {explanations.get('method')}. Per class, over its images: the share "
             "of the mean |attribution| held by the top 10 % of pixels, and where that mass "
             "is centred (row, column from the top left):", ""]  # fmt: skip
    for c in explanations.get("classes", []):
        f = c.get("focus") or {}
        if f.get("top_share") is None:
            continue
        row, col = f["centre"]
        lines.append(f"- class {c['class']} ({c['n']} images): {f['top_share']:.0%}, centred "
                     f"at row {row:.1f}, column {col:.1f}")  # fmt: skip
    return lines


def _image_limits(training: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    ims = training.get("images") or {}
    h, w = ims.get("size") or ("?", "?")
    classes = list((ims.get("class_counts") or {}).keys())
    out = [
        f"Every image is resized to {h}x{w} (bilinear, aspect ratio not kept): detail finer "
        "than that is lost, and very different proportions are distorted.",
        "It reads colour: an image with other colours than the training images may be "
        "misread." if ims.get("colour") else
        "It reads grayscale only: colours of the same brightness look alike to it.",
        f"It knows only the classes {', '.join(classes)}: any other image still gets one of "
        "these labels, often with high confidence (there is no 'none of these').",
    ]  # fmt: skip
    n = int(evaluation.get("n") or 0)
    acc = (evaluation.get("metrics") or {}).get("accuracy")
    if n and isinstance(acc, float):
        half = 1.96 * math.sqrt(max(acc * (1 - acc), 1e-12) / n)
        out.append(f"Hold-out accuracy {acc:.3f} on {n} images: about ±{half:.3f} (95 %).")
    conf = evaluation.get("confusion") or {}
    for label, row in zip(conf.get("labels", []), conf.get("matrix", []), strict=False):
        i = conf["labels"].index(label)
        if sum(row) and row[i] / sum(row) < (acc or 0) - 0.1:
            out.append(f"Weaker on class {label}: {row[i]} of {sum(row)} hold-out images right.")
    out.append("Trained from scratch on this project's images only: expect it to hold for "
               "images taken and prepared like them.")  # fmt: skip
    return [f"- {line}" for line in out]


MONITORED = (
    "- Per served image (`POST /v1/models/NAME/predict-image`, written to the prediction log):",
    "  - pixel statistics: `brightness` (mean), `contrast` (standard deviation), "
    "`dark_share` (share of pixels under 0.1);",
    "  - the size as sent: `width`, `height` (before resizing);",
    "  - `emb_pc1` … `emb_pc4`: the penultimate layer's first four principal components "
    "(axes fitted on the training images); a shift the pixel averages miss moves these.",
    "- Each goes through the same numeric drift test as a table's column (`keizoku monitor`); "
    "drift triggers `keizoku retrain` per the spec's `retraining:` section.",
)


def render_image_card(
    training: dict[str, Any],
    evaluation: dict[str, Any] | None,
    explanations: dict[str, Any] | None,
    versions: list[dict[str, Any]],
    version: int | None,
    use: str,
) -> str:
    """The card of an image model (``ImageModel``, ``keizoku.deep.loop``) as Markdown: its
    data, network and training, hold-out metrics, learning curve, explanations, known
    limits and what the monitor watches."""
    name = training.get("project", "model")
    title = f"{name}:{version}" if version is not None else f"{name} (new version)"
    evaluation = evaluation or {}
    return "\n".join([
        f"# Model card: {title}", "",
        "## Intended use", use, "",
        "## Model", *_image_model(training), "",
        "## Data", *_image_data(training), "",
        "## Training", *_image_training(training), "",
        f"## Metrics ({evaluation.get('source', 'hold-out images')})",
        *(_metrics(evaluation) if evaluation else ["No hold-out image: not measured."]), "",
        "## Learning curve", *_image_curve(training), "",
        "## Explanations: where the network looks", *_image_explanations(explanations), "",
        "## Known limits", *_image_limits(training, evaluation), "",
        "## What the monitor watches", *MONITORED, "",
        "## Version lineage", *_lineage(versions, version), "",
    ])  # fmt: skip
