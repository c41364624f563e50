"""The training-time artifact hook: evaluation evidence saved with every version.

``build_evidence`` is one of ``keizoku.project.ARTIFACT_BUILDERS`` and runs inside
``keizoku train`` after the search, on the training context. From the out-of-fold
predictions (no refit) it
writes ``evaluation.json`` (metrics, curves, worst slices, learning curve, data
period), ``importance.json``, ``fairness.json``, ``background.json`` (a small sample
used to explain single rows) and ``model_card.md``. It is bounded: SHAP on at most
2000 rows, permutation importance and the learning curve within a few seconds each
(:func:`step_budget`: ``STEP_BUDGET_S``, or less when ``train``'s budget has less left).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.evaluation.card import intended_use, lineage, render_card
from keizoku.evaluation.fairness import fairness_report

if TYPE_CHECKING:
    from keizoku.training.context import TrainingContext

__all__ = ["build_evidence", "data_period", "step_budget", "write_json", "EVIDENCE_FILES"]

EVIDENCE_FILES = {
    "evaluation": "evaluation.json",
    "importance": "importance.json",
    "fairness": "fairness.json",
    "background": "background.json",
    "model_card": "model_card.md",
}
BACKGROUND_ROWS = 30
STEP_BUDGET_S = 2.5
CV_SOURCE = "cross-validation (out-of-fold predictions)"


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: Any) -> Path:
    """Strict JSON (NaN/inf become null) so browsers and other tools can read it."""
    path.write_text(json.dumps(_clean(data), indent=1, default=str, allow_nan=False))
    return path


def data_period(frame: pd.DataFrame, schema: Schema) -> dict[str, dict[str, str]]:
    """Min and max of every datetime column."""
    out = {}
    for col in schema.columns:
        if col.kind != "datetime" or col.name not in frame:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamps = pd.to_datetime(frame[col.name], errors="coerce", format="mixed")
        if stamps.notna().any():
            out[col.name] = {"min": str(stamps.min()), "max": str(stamps.max())}
    return out


def step_budget(ctx: TrainingContext) -> float:
    """Seconds for each of the two capped steps: ``STEP_BUDGET_S``, or an equal share of
    what the budget has left (``ctx.evidence_s``). At 0 each still does its least: one
    learning-curve point, one small SHAP chunk or one base score per member."""
    if ctx.evidence_s is None:
        return STEP_BUDGET_S
    return min(STEP_BUDGET_S, max(ctx.evidence_s, 0.0) / 2)


def build_evidence(ctx: TrainingContext, folder: Path) -> dict[str, Path]:
    # here, not at the top: readers of EVIDENCE_FILES (promote's gate) need no scikit-learn
    from keizoku.evaluation.explain import global_importance
    from keizoku.evaluation.learning import learning_curve
    from keizoku.evaluation.metrics import evaluate_predictions

    """Artifact builder: write the evidence files into ``folder``; return {name: path}."""
    started = time.monotonic()
    result, schema = ctx.result, ctx.schema
    model = result.model
    frame, y, oof = ctx.oof_frame, ctx.oof_y, ctx.oof
    task = str(model.task)
    evaluation = evaluate_predictions(task, y, oof, model.classes, frame, schema, CV_SOURCE)
    step_s = step_budget(ctx)
    evaluation["learning_curve"] = learning_curve(model, frame, y, result.metric, step_s)
    evaluation["data_period"] = data_period(frame, schema)
    importance = global_importance(model, frame, y, result.metric, step_s)
    fairness = fairness_report(task, y, oof, frame, schema, CV_SOURCE)
    columns = [c.name for c in schema.features + schema.sensitive]
    sample = frame[columns].sample(min(len(frame), BACKGROUND_ROWS), random_state=0)
    training = ctx.info.to_dict()
    versions = lineage(training["project"]) if training.get("project") else []
    upcoming = max((v["version"] for v in versions), default=0) + 1
    card = render_card(
        training, evaluation, importance, fairness, versions, upcoming, intended_use()
    )
    evaluation["evidence_seconds"] = round(time.monotonic() - started, 3)
    evaluation["evidence_step_s"] = round(step_s, 3)  # each capped step's allowance
    paths = {
        "evaluation": write_json(folder / EVIDENCE_FILES["evaluation"], evaluation),
        "importance": write_json(folder / EVIDENCE_FILES["importance"], importance),
        "fairness": write_json(folder / EVIDENCE_FILES["fairness"], fairness),
        "background": write_json(
            folder / EVIDENCE_FILES["background"],
            json.loads(sample.to_json(orient="records", date_format="iso")),
        ),
    }
    card_path = folder / EVIDENCE_FILES["model_card"]
    card_path.write_text(card)
    paths["model_card"] = card_path
    return paths
