"""Tree SHAP per family and task: contributions + expected value == the member's raw output.

Models are built in-process (no registry): one encoder + one estimator of each tree
family, as ``fit_automl`` would refit them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_wine

from keizoku.data.schema import infer_schema
from keizoku.evaluation.explain import explain_row
from keizoku.features.encoder import TabularEncoder
from keizoku.training.context import encode_target
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


def _model(family: str, task: str) -> tuple[KeizokuModel, pd.DataFrame]:
    frame, target = _data(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, target)
    fam = FAMILIES[family]
    enc = TabularEncoder([c.model_dump() for c in schema.features], mode=fam.mode).fit(frame)
    y, classes = encode_target(frame[target], schema)
    est = fam.build(task, {**fam.defaults, "n_estimators": 30}, 0)
    est.fit(enc.transform(frame), y)
    member = Member(family, {}, enc, est)
    return KeizokuModel(schema=schema, task=task, members=[member], classes=classes), frame


def _raw_output(member: Member, X: np.ndarray, family: str, task: str) -> np.ndarray:
    est = member.estimator
    if family == "lightgbm":
        return np.atleast_1d(est.booster_.predict(X, raw_score=True)[0])
    if family == "xgboost":
        return np.atleast_1d(est.predict(X, output_margin=True)[0])
    if task == "regression":
        return np.atleast_1d(est.predict(X)[0])
    if family == "hist_gradient_boosting":
        return np.atleast_1d(est.decision_function(X)[0])
    return est.predict_proba(X)[0]  # random forest / extra trees: probability


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
    raw = _raw_output(member, X, family, task)
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
