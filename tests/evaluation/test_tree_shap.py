"""Tree SHAP per family and task: contributions + expected value == the member's raw output;
LightGBM's and XGBoost's own TreeSHAP == ``shap.TreeExplainer``'s.

Models are built in-process (no registry): one encoder + one estimator of each tree
family, as ``fit_automl`` would refit them.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_wine

from keizoku.data.schema import infer_schema
from keizoku.evaluation.explain import (
    _encoded_once,
    _tree_importance,
    encoded_to_feature,
    explain_row,
    tree_shap,
)
from keizoku.features.encoder import TabularEncoder
from keizoku.training.context import encode_target
from keizoku.training.cv import fit_fold
from keizoku.training.model import KeizokuModel, Member
from keizoku.training.zoo import FAMILIES


def _data(task: str) -> tuple[pd.DataFrame, str]:
    if task == "regression":
        return load_diabetes(as_frame=True, scaled=False).frame.head(200), "target"
    frame = load_wine(as_frame=True).frame
    frame["colour"] = np.where(frame["alcohol"] > 13, "deep", "pale")  # a categorical feature
    if task == "binary":
        frame["target"] = (frame["target"] == 0).map({True: "yes", False: "no"})
    return frame, "target"


def _model(family: str, task: str, stopped: bool = False) -> tuple[KeizokuModel, pd.DataFrame]:
    """One member refitted on all rows (30 trees), or (``stopped``) a fold model as a bag
    serves it: fitted by ``fit_fold`` with early stopping on a fifth of the rows (XGBoost
    keeps the 50 rounds after its best iteration; LightGBM keeps only the best ones)."""
    frame, target = _data(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, target)
    fam = FAMILIES[family]
    enc = TabularEncoder([c.model_dump() for c in schema.features], mode=fam.mode).fit(frame)
    y, classes = encode_target(frame[target], schema)
    if stopped:
        order = np.random.default_rng(0).permutation(len(frame))
        split = (order[: len(frame) * 4 // 5], order[len(frame) * 4 // 5 :])
        params = {**fam.defaults, "n_estimators": 400, "learning_rate": 0.3}
        est = fit_fold(fam, params, task, 0, enc, enc.transform(frame), y, split,
                       len(classes or []), time.monotonic() + 300).model  # fmt: skip
    else:
        est = fam.build(task, {**fam.defaults, "n_estimators": 30}, 0)
        est.fit(enc.transform(frame), y)
    member = Member(family, {}, enc, est)
    return KeizokuModel(schema=schema, task=task, members=[member], classes=classes), frame


def _raw_output(member: Member, X: np.ndarray, task: str) -> np.ndarray:
    """The member's raw output, n × outputs: log-odds / raw scores / values, or the
    probabilities (random forest, extra trees), over the trees it predicts with."""
    est = member.estimator
    if member.family == "lightgbm":  # up to its best iteration
        out = est.booster_.predict(X, raw_score=True)
    elif member.family == "xgboost":  # likewise
        out = est.predict(X, output_margin=True)
    elif task == "regression":
        out = est.predict(X)
    elif member.family == "hist_gradient_boosting":
        out = est.decision_function(X)
    else:
        out = est.predict_proba(X)
    return np.asarray(out, dtype=float).reshape(len(X), -1)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize(
    "family", ["lightgbm", "xgboost", "random_forest", "extra_trees", "hist_gradient_boosting"]
)
def test_tree_shap_sums_to_the_raw_output(family: str, task: str) -> None:
    model, frame = _model(family, task)
    record: dict[str, Any] = frame.drop(columns=["target"]).iloc[3].to_dict()
    result = explain_row(model, record, background=frame.head(20), top=100)
    total = result["expected_value"] + sum(c["contribution"] for c in result["contributions"])
    assert total == pytest.approx(result["output"], abs=1e-9)
    member = model.members[0]
    X = member.encoder.transform_records([record])
    proba = model.predict_raw_records([record])[0]
    if result["method"] == "sampling_shapley":  # shap could not read this model
        k = (
            [str(c) for c in model.classes or []].index(result["output_class"])
            if model.classes
            else None
        )
        assert result["output"] == pytest.approx(float(proba if k is None else proba[k]), abs=1e-6)
        return
    raw = _raw_output(member, X, task)[0]
    k = 0
    if task == "multiclass":
        k = int(np.argmax(proba))
    elif task == "binary" and raw.size == 2:
        k = 1
    assert result["output"] == pytest.approx(float(raw[k]), rel=1e-5, abs=1e-5)
    expected_space = {
        "binary": "log-odds",
        "multiclass": "raw score (softmax input)",
        "regression": "predicted value",
    }[task]
    if family in ("random_forest", "extra_trees") and task != "regression":
        expected_space = "probability"
    assert result["space"] == expected_space


@pytest.mark.parametrize("stopped", [False, True], ids=["refit", "early-stopped-fold"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_native_tree_shap_equals_shap_and_adds_up(family: str, task: str, stopped: bool) -> None:
    """LightGBM's and XGBoost's own TreeSHAP are shap.TreeExplainer's values (same
    path-dependent algorithm, no background data), over the same trees, and add up to the
    raw output of every row."""
    import shap

    model, frame = _model(family, task, stopped)
    member = model.members[0]
    X = member.encoder.transform(frame.drop(columns=["target"]))
    values, expected, _ = tree_shap(member, X, task)
    outputs = 1 if task != "multiclass" else 3
    assert values.shape == (len(X), X.shape[1], outputs) and expected.shape == (outputs,)

    est = member.estimator
    if stopped and family == "xgboost":  # it keeps the rounds after its best: they must not count
        booster = est.get_booster()
        assert booster.best_iteration + 1 < booster.num_boosted_rounds()
    explainer = shap.TreeExplainer(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.asarray(explainer.shap_values(X), dtype=float)
    reference = reference.reshape(values.shape)
    np.testing.assert_allclose(values, reference, rtol=0, atol=1e-6)
    shap_expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    np.testing.assert_allclose(expected, shap_expected, rtol=0, atol=1e-6)
    total = expected + values.sum(axis=1)  # XGBoost sums in float32: relative 1e-6
    np.testing.assert_allclose(total, _raw_output(member, X, task), rtol=1e-6, atol=1e-6)


def test_shap_families_explain_every_chunk_with_one_explainer() -> None:
    """A random forest's importance (shap.TreeExplainer, built once for all chunks) is the
    mean |SHAP| of the rows it covered, per original feature (averaged over classes)."""
    import shap

    model, frame = _model("random_forest", "multiclass")
    member = model.members[0]
    features = model.feature_names
    shuffled = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    encoded = _encoded_once(shuffled.reset_index(drop=True))
    found = _tree_importance(member, encoded, "multiclass", features, time.monotonic() + 300)
    values, method, rows = found
    assert method == "mean |SHAP| (probability)" and rows == len(frame)
    X = member.encoder.transform(shuffled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phi = np.asarray(shap.TreeExplainer(member.estimator).shap_values(X), dtype=float)
    owners = encoded_to_feature(list(member.encoder.feature_names_out_), features)
    index = {f: i for i, f in enumerate(features)}
    per_feature = np.zeros((len(X), phi.shape[2], len(features)))
    for j, owner in enumerate(owners):
        per_feature[:, :, index[owner]] += phi[:, j, :]
    mean_abs = np.abs(per_feature).mean(axis=1).mean(axis=0)  # over classes, then rows
    np.testing.assert_allclose(values, mean_abs, rtol=0, atol=1e-9)


def _own_permutation_importance(
    member: Member, frame: pd.DataFrame, y: np.ndarray, features: list[str], metric: Any
) -> np.ndarray:
    """Permutation importance of one member on its own: its own generator seeded 0, each
    feature's shuffled copy of ``frame`` encoded by its own encoder."""
    from keizoku.training.model import raw_predict

    rng = np.random.default_rng(0)

    def score(f: pd.DataFrame) -> float:
        pred = raw_predict(member.estimator, member.encoder.transform(f), "multiclass")
        return float(metric.oriented(y, pred))

    base, out = score(frame), []
    for name in features:
        shuffled = frame.copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        out.append(max(base - score(shuffled), 0.0))
    return np.array(out)


@pytest.mark.parametrize("keep_bytes", [64 * 2**20, 0], ids=["kept", "encoded-each-time"])
def test_permutation_importance_is_each_members_own(
    keep_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bag's fold models share their encoder, so the shuffled rows are encoded once for
    all of them (and once per other encoder): each member's importances are exactly those it
    gets alone, with its own generator and its own encoding, whether the encoded matrices
    are kept for the next member or (past the memory cap) encoded again."""
    from keizoku.evaluation import explain
    from keizoku.training.metrics import get_metric

    monkeypatch.setattr(explain, "PERMUTED_KEEP_BYTES", keep_bytes)
    frame, target = _data("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, target)
    y, classes = encode_target(frame[target], schema)
    members = []
    for family, folds in (("linear", 3), ("knn", 2)):
        fam = FAMILIES[family]
        enc = TabularEncoder([c.model_dump() for c in schema.features], mode=fam.mode).fit(frame)
        X = enc.transform(frame)
        order = np.random.default_rng(1).permutation(len(frame))
        for k in range(folds):
            valid = order[k::folds]
            split = (np.setdiff1d(order, valid), valid)
            fit = fit_fold(fam, dict(fam.defaults), "multiclass", 0, enc, X, y, split, 3,
                           time.monotonic() + 300)  # fmt: skip
            members.append(Member(family, {}, enc, fit.model, weight=1.0 + k))
    model = KeizokuModel(schema=schema, task="multiclass", members=members, classes=classes)
    metric = get_metric("log_loss", "multiclass")
    found = explain.global_importance(model, frame, y, metric, budget_s=1e6)
    order = np.random.default_rng(0).permutation(len(frame))  # global_importance's row order
    rows = frame.iloc[order].reset_index(drop=True)
    for member, reported in zip(members, found["members"], strict=True):
        assert reported["method"] == "permutation importance (drop in log_loss)"
        assert reported["rows"] == len(frame) and reported["skipped"] == []
        own = _own_permutation_importance(member, rows, y[order], model.feature_names, metric)
        assert [reported["importance"][f] for f in model.feature_names] == own.tolist()
