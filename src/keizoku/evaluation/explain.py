"""Global importance and per-row explanations, always per original feature.

Global importance, per member of the model:

- tree members (LightGBM, XGBoost, random forest, extra trees, histogram GBM):
  mean |SHAP| on the member's encoded matrix (at most ``MAX_SHAP_ROWS`` rows); encoded
  columns are summed back to their original feature (one-hot parts, date parts, text
  terms) per row before taking the absolute value. LightGBM and XGBoost compute their
  exact (path-dependent) TreeSHAP themselves (``pred_contrib`` / ``pred_contribs``: what
  ``shap.TreeExplainer`` without background data calls too, without converting the model
  in Python first); the other families go through ``shap.TreeExplainer``, built once per
  member, and only they import shap;
- other members (linear, kNN, SVM), or a tree model shap cannot read: permutation
  importance, the drop of the project's metric when one original column is shuffled.

The model-level ranking weights each member's importances, normalised to shares that
sum to 1, by the member's ensemble weight.

Per-row explanations (``explain_row``) add up exactly:

- a single tree member: tree SHAP in the model's **raw output** space, i.e. the
  log-odds of the positive class (binary LightGBM/XGBoost/histogram GBM), the raw
  score of the predicted class (multiclass), the predicted value (regression), or
  the probability (random forest / extra trees); ``expected_value + sum(contributions)``
  equals that raw output;
- anything else (ensembles, linear, kNN, SVM): Shapley values estimated by sampling
  feature orderings against a background sample saved at training, in **probability**
  space (classifiers: the predicted class) or value space (regression). Each sampled
  ordering telescopes, so ``expected_value + sum(contributions)`` equals the model's
  output exactly, where ``expected_value`` is the mean output over the background.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.data.validate import ANY_FIX, Checked, RecordValidator, check_records
from keizoku.errors import UserInputError
from keizoku.registry.servable import ServableMember, ServableModel
from keizoku.training.model import lightgbm_options, raw_predict

__all__ = [
    "TREE_FAMILIES",
    "encoded_to_feature",
    "global_importance",
    "explain_row",
    "tree_contributions",
    "tree_shap",
    "check_record",
]

TREE_FAMILIES = ("lightgbm", "xgboost", "hist_gradient_boosting", "random_forest", "extra_trees")
PROBABILITY_TREES = ("random_forest", "extra_trees")
MAX_SHAP_ROWS = 2000
MAX_PERMUTATION_ROWS = 1000
MAX_BACKGROUND = 30
PERMUTATIONS = 12


def encoded_to_feature(encoded: list[str], features: list[str]) -> list[str]:
    """The original feature of each encoded column (``Sex=male`` → ``Sex``)."""
    by_length = sorted(features, key=len, reverse=True)
    out = []
    for name in encoded:
        owner = next(
            (f for f in by_length if name == f or name.startswith((f + "__", f + "="))), name
        )
        out.append(owner)
    return out


def _aggregate(values: np.ndarray, owners: list[str], features: list[str]) -> np.ndarray:
    """Sum encoded columns (last axis of ``values`` is the encoded axis) per original feature."""
    index = {f: i for i, f in enumerate(features)}
    out = np.zeros(values.shape[:-1] + (len(features),))
    for j, owner in enumerate(owners):
        out[..., index[owner]] += values[..., j]
    return out


Contributions = Callable[[np.ndarray], np.ndarray]


def _lightgbm_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """LightGBM's own TreeSHAP over the trees it predicts with (``lightgbm_options``)."""
    phi = estimator.booster_.predict(
        X, pred_contrib=True, **lightgbm_options(estimator, X.shape[0])
    )
    return np.asarray(phi, dtype=float)


def _xgboost_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """XGBoost's own TreeSHAP over the rounds its ``predict`` uses (up to the best
    iteration when early stopping recorded one)."""
    import xgboost as xgb

    booster = estimator.get_booster()
    best = getattr(booster, "best_iteration", None)  # unset (AttributeError): no early stop
    rounds = (0, 0) if best is None else (0, int(best) + 1)
    data = xgb.DMatrix(X, missing=getattr(estimator, "missing", np.nan))
    phi = booster.predict(data, pred_contribs=True, iteration_range=rounds)
    return np.asarray(phi, dtype=float)


def _shap_contributions(estimator: Any) -> Contributions:
    """``shap.TreeExplainer``'s values for the families it converts itself (built once: it
    converts the whole model in Python), laid out as the libraries' own (see below)."""
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(estimator)

    def contributions(X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=float)
        if values.ndim == 2:
            values = values[:, :, None]
        expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
        bias = np.broadcast_to(expected, (len(X), 1, len(expected)))
        return np.moveaxis(np.concatenate([values, bias], axis=1), 1, 2)

    return contributions


def tree_contributions(member: ServableMember) -> Contributions:
    """The member's TreeSHAP as a function of an encoded matrix: n × outputs × (encoded + 1),
    the last column the expected value (LightGBM's and XGBoost's own layout). Build it once
    per member and call it per chunk of rows."""
    estimator = member.estimator
    if getattr(estimator, "booster_", None) is not None:  # LightGBM's scikit-learn model
        return partial(_lightgbm_contributions, estimator)
    if type(estimator).__module__.startswith("xgboost"):  # XGBClassifier / XGBRegressor
        return partial(_xgboost_contributions, estimator)
    return _shap_contributions(estimator)


def tree_shap(
    member: ServableMember,
    X: np.ndarray,
    task: str,
    contributions: Contributions | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """SHAP values (n × encoded × outputs), expected values (outputs) and their space;
    ``contributions``: the member's :func:`tree_contributions`, when already built."""
    phi = (contributions or tree_contributions(member))(X)
    phi = phi.reshape(X.shape[0], -1, X.shape[1] + 1)  # LightGBM: classes side by side
    values, expected = np.moveaxis(phi[:, :, :-1], 1, 2), phi[0, :, -1]
    if task == "binary" and values.shape[2] == 2:  # probability trees: keep the positive class
        values, expected = values[:, :, 1:], expected[1:]
    if member.family in PROBABILITY_TREES and task != "regression":
        space = "probability"
    elif task == "binary":
        space = "log-odds"
    elif task == "multiclass":
        space = "raw score (softmax input)"
    else:
        space = "predicted value"
    return values, expected, space


def _shap_supported(member: ServableMember) -> bool:
    return member.family in TREE_FAMILIES


SHAP_CHUNK = 200
SHAP_FIRST_CHUNK = 5


Encoded = Callable[[ServableMember], np.ndarray]
Permuted = Callable[[ServableMember, int | None], np.ndarray]


def _encoded_once(frame: pd.DataFrame) -> Encoded:
    """The first ``MAX_SHAP_ROWS`` rows of ``frame`` as a member's encoder encodes them,
    encoded once per encoder: the fold models of a bag share theirs (a row's encoding does
    not depend on the rows around it)."""
    rows = frame.iloc[:MAX_SHAP_ROWS]
    done: dict[int, tuple[Any, np.ndarray]] = {}  # id → (the encoder, kept alive; its rows)

    def encoded(member: ServableMember) -> np.ndarray:
        key = id(member.encoder)
        if key not in done:
            done[key] = (member.encoder, member.encoder.transform(rows))
        return done[key][1]

    return encoded


PERMUTED_KEEP_BYTES = 64 * 2**20  # encoded shuffled matrices kept for the next member


def _permuted_once(frame: pd.DataFrame, features: list[str]) -> Permuted:
    """``permuted(member, i)``: the permutation-importance rows (the first
    ``MAX_PERMUTATION_ROWS`` of ``frame``) with feature ``i`` shuffled (None: as they are),
    as the member's encoder encodes them.

    Every member shuffles alike: feature ``i``'s shuffle is the ``i``-th draw of one
    generator seeded 0 (a member draws the features in order and stops at its deadline,
    so the ``i``-th shuffle never depends on the member). The shuffled values are drawn
    once, and each matrix is encoded once per encoder (the fold models of a bag share
    theirs) while the matrices kept stay under ``PERMUTED_KEEP_BYTES``.
    """
    rows = frame.iloc[:MAX_PERMUTATION_ROWS]
    rng = np.random.default_rng(0)
    shuffles: list[np.ndarray] = []  # feature i's shuffled values, drawn in order
    done: dict[tuple[int, int | None], tuple[Any, np.ndarray]] = {}  # (encoder id, i) → …
    kept = 0

    def permuted(member: ServableMember, i: int | None) -> np.ndarray:
        nonlocal kept
        key = (id(member.encoder), i)
        if key in done:
            return done[key][1]
        shuffled = rows
        if i is not None:
            while len(shuffles) <= i:
                shuffles.append(rng.permutation(rows[features[len(shuffles)]].to_numpy()))
            shuffled = rows.copy()
            shuffled[features[i]] = shuffles[i]
        X = member.encoder.transform(shuffled)
        if i is None or kept + X.nbytes <= PERMUTED_KEEP_BYTES:
            done[key] = (member.encoder, X)  # the encoder kept alive: its id stays its own
            kept += 0 if i is None else X.nbytes
        return X

    return permuted


def _tree_importance(
    member: ServableMember, encoded: Encoded, task: str, features: list[str], deadline: float
) -> tuple[np.ndarray, str, int]:
    """Mean |SHAP| per original feature, over chunks of rows until the deadline (≥ 1 chunk)."""
    owners = encoded_to_feature(list(member.encoder.feature_names_out_), features)
    contributions = tree_contributions(member)
    total, rows, space = np.zeros(len(features)), 0, ""
    start, chunk = 0, SHAP_FIRST_CHUNK  # measures the cost (a big multiclass bag: seconds)
    matrix = encoded(member)
    while start < len(matrix):
        if rows and time.monotonic() > deadline:
            break
        began = time.monotonic()
        X = matrix[start : start + chunk]
        start += chunk
        values, _, space = tree_shap(member, X, task, contributions)
        per_row = (time.monotonic() - began) / max(len(X), 1)
        chunk = int(min(SHAP_CHUNK, max(10, (deadline - time.monotonic()) / max(per_row, 1e-6))))
        per_feature = _aggregate(np.moveaxis(values, 1, 2), owners, features)  # n × out × d
        total += np.abs(per_feature).mean(axis=1).sum(axis=0)
        rows += len(X)
    return total / max(rows, 1), f"mean |SHAP| ({space})", rows


def _permutation_importance(
    member: ServableMember,
    y: np.ndarray,
    task: str,
    metric: Any,
    features: list[str],
    deadline: float,
    permuted: Permuted,
) -> tuple[np.ndarray, list[str]]:
    """Drop of the oriented metric when each column is shuffled; features past the deadline
    are returned as skipped (importance 0)."""

    def score(i: int | None) -> float:
        pred = raw_predict(member.estimator, permuted(member, i), task)
        return float(metric.oriented(y, pred))

    base = score(None)
    out = np.zeros(len(features))
    skipped = []
    for i, name in enumerate(features):
        if time.monotonic() > deadline:
            skipped.append(name)
            continue
        out[i] = max(base - score(i), 0.0)
    return out, skipped


def _member_importance(
    m: ServableMember,
    frame: pd.DataFrame,
    y: np.ndarray,
    task: str,
    metric: Any,
    features: list[str],
    deadline: float,
    encoded: Encoded,
    permuted: Permuted,
) -> dict[str, Any]:
    note = ""
    if _shap_supported(m):
        try:
            values, method, rows = _tree_importance(m, encoded, task, features, deadline)
            return {"method": method, "rows": rows, "values": values, "skipped": []}
        except (ValueError, TypeError, NotImplementedError, AttributeError) as exc:
            # shap cannot read every tree model (e.g. some multiclass sklearn ones)
            note = f" (tree SHAP unavailable: {type(exc).__name__})"
    n = min(len(frame), MAX_PERMUTATION_ROWS)
    values, skipped = _permutation_importance(m, y[:n], task, metric, features, deadline, permuted)
    method = f"permutation importance (drop in {metric.name}){note}"
    return {"method": method, "rows": n, "values": values, "skipped": skipped}


def global_importance(
    model: ServableModel,
    frame: pd.DataFrame,
    y: np.ndarray,
    metric: Any,
    budget_s: float = 4.0,
) -> dict[str, Any]:
    """Per-feature importance of every member and of the whole model (weighted shares).

    Rows are shuffled once (seeded) so that any prefix is a random sample; each member
    gets an equal part of ``budget_s``, and always at least one chunk / the base score.
    """
    features = model.feature_names
    order = np.random.default_rng(0).permutation(len(frame))
    frame, y = frame.iloc[order].reset_index(drop=True), y[order]
    members, combined = [], np.zeros(len(features))
    total = sum(m.weight for m in model.members) or 1.0
    share_s = budget_s / max(len(model.members), 1)
    encoded, permuted = _encoded_once(frame), _permuted_once(frame, features)
    for m in model.members:
        deadline = time.monotonic() + share_s
        found = _member_importance(
            m, frame, y, model.task, metric, features, deadline, encoded, permuted
        )
        values = found.pop("values")
        share = values / values.sum() if values.sum() > 0 else values
        combined += share * (m.weight / total)
        importance = {f: float(v) for f, v in zip(features, values, strict=True)}
        members.append({"family": m.family, "weight": m.weight, **found, "importance": importance})
    ranking = np.argsort(-combined, kind="stable")
    return {
        "features": [{"feature": features[i], "share": float(combined[i])} for i in ranking],
        "members": members,
        "note": "share: each member's importances normalised to sum to 1, weighted by the "
        "member's ensemble weight",
    }


# ------------------------------------------------------------------ one row


def check_record(schema: Schema, record: dict[str, Any], *, allow_unseen: bool = False) -> Checked:
    """Check one row with the record validator of every path (``keizoku.data.validate``)."""
    if not isinstance(record, dict) or not record:
        raise UserInputError(
            'The row must be a non-empty JSON object of column → value, e.g. {"Age": 22}.'
        )
    return check_records(
        RecordValidator(schema), [record], single=True, allow_unseen=allow_unseen, fix=ANY_FIX
    )


def _output_index(model: ServableModel, proba: np.ndarray) -> int | None:
    if model.task == "regression":
        return None
    return 1 if model.task == "binary" else int(np.argmax(proba))


def _explain_tree(model: ServableModel, record: dict[str, Any]) -> dict[str, Any]:
    member = model.members[0]
    X = member.encoder.transform_records([record])
    values, expected, space = tree_shap(member, X, model.task)
    proba = model.predict_raw_records([record])[0]
    k = _output_index(model, np.atleast_1d(proba))
    j = 0 if values.shape[2] == 1 else int(k or 0)
    owners = encoded_to_feature(list(member.encoder.feature_names_out_), model.feature_names)
    contrib = _aggregate(values[0, :, j], owners, model.feature_names)
    return {"method": "tree_shap", "space": space, "expected": float(expected[j]), "phi": contrib}


def _model_output(model: ServableModel, frame: pd.DataFrame, k: int | None) -> np.ndarray:
    raw = model.predict_raw(frame)
    return raw if k is None else raw[:, k]


def _explain_sampling(
    model: ServableModel, record: dict[str, Any], background: pd.DataFrame, k: int | None
) -> dict[str, Any]:
    features = model.feature_names
    d = len(features)
    bg = background[features].head(MAX_BACKGROUND).astype(object).to_numpy()
    x = np.array([record.get(f) for f in features], dtype=object)
    rng = np.random.default_rng(0)
    perms = [rng.permutation(d) for _ in range(PERMUTATIONS)]
    blocks = []
    for perm in perms:
        switched = np.zeros((d + 1, d), dtype=bool)  # row j: the first j features of perm are x's
        for j in range(1, d + 1):
            switched[j:, perm[j - 1]] = True
        for b in bg:
            blocks.append(np.where(switched, x[None, :], b[None, :]))
    rows = pd.DataFrame(np.concatenate(blocks), columns=features)
    for col in model.schema.sensitive:
        rows[col.name] = None
    out = _model_output(model, rows, k).reshape(len(perms), len(bg), d + 1)
    steps = np.diff(out, axis=2)  # perms × background × d: gain of adding perm[j]
    phi = np.zeros(d)
    for p, perm in enumerate(perms):
        phi[perm] += steps[p].mean(axis=0)
    phi /= len(perms)
    space = "predicted value" if k is None else "probability"
    expected = float(out[:, :, 0].mean())
    return {"method": "sampling_shapley", "space": space, "expected": expected, "phi": phi}


def explain_row(
    model: ServableModel,
    record: dict[str, Any],
    background: pd.DataFrame | None = None,
    top: int = 10,
    *,
    allow_unseen: bool = False,
) -> dict[str, Any]:
    """Contributions of each feature to one prediction; they add up to the reported output.

    The row is checked like a prediction request; with ``allow_unseen`` unseen categories
    and missing features are explained as unknown/missing and reported under ``warnings``.
    """
    allowed = check_record(model.schema, record, allow_unseen=allow_unseen)
    missing = [c.name for c in model.schema.features if record.get(c.name) is None]
    proba = np.atleast_1d(model.predict_raw_records([record])[0])
    k = _output_index(model, proba)
    single_tree = len(model.members) == 1 and _shap_supported(model.members[0])
    result = None
    if single_tree:
        try:
            result = _explain_tree(model, record)
        except (ValueError, TypeError, NotImplementedError, AttributeError):
            result = None  # shap cannot read this tree model: fall back to sampling
    if result is None:
        if background is None or background.empty:
            raise UserInputError(
                "Explaining this model needs the background sample saved at training "
                "(artifact background.json); retrain it with `keizoku train` to create one."
            )
        result = _explain_sampling(model, record, background, k)
    phi = np.asarray(result["phi"], dtype=float)
    order = np.argsort(-np.abs(phi))
    shown = order[: max(top, 0)]
    labels = model.labels(proba[None, :] if model.task != "regression" else proba)
    contributions = [
        {
            "feature": model.feature_names[i],
            "value": _jsonable(record.get(model.feature_names[i])),
            "contribution": float(phi[i]),
        }
        for i in shown
    ]
    return {
        "prediction": _jsonable(labels[0]),
        "output_class": None if k is None else str((model.classes or [])[k]),
        "space": result["space"],
        "method": result["method"],
        "expected_value": result["expected"],
        "output": result["expected"] + float(phi.sum()),
        "contributions": contributions,
        "rest": float(phi[order[len(shown) :]].sum()),
        "missing_features": missing,
        "warnings": allowed.to_dict() if allowed else None,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
