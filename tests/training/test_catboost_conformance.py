"""CatBoost, the optional family (decision 0012): the conformance suite's contracts for it
(it joins ``FAMILIES``, hence tests/conformance, only when the package is installed) plus what
is particular to it: early stopping on the fold's validation rows, data
with categorical columns, and a clear error when it is asked for but not installed."""

from __future__ import annotations

import importlib.util
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from keizoku.data.schema import infer_schema
from keizoku.errors import UserInputError
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.search import run_search
from keizoku.training.zoo import ALL_FAMILIES, FAMILIES, families_for

INSTALLED = importlib.util.find_spec("catboost") is not None
needs_catboost = pytest.mark.skipif(not INSTALLED, reason="catboost (optional) is not installed")


def _frame() -> pd.DataFrame:
    """Breast cancer, 300 rows, with a text column whose levels carry signal."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:300, [0, 1, 7, 30]].copy()
    frame["band"] = pd.qcut(frame["mean concave points"], 3, labels=["lo", "mid", "hi"]).astype(str)
    frame["target"] = [str(data.target_names[i]) for i in frame["target"]]
    return frame.drop(columns=["mean concave points"])


@needs_catboost
def test_catboost_fits_stops_early_and_serves_records() -> None:
    frame = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = TrainingData.build(frame, infer_schema(frame, "target"))
    cfg = TrainSpec(models=["catboost"], max_trials=1, folds=3, ensemble=False, budget=120.0)
    first = [{"family": "catboost", "params": {"n_estimators": 400}}]
    res = run_search(data, cfg, warm_start=first)
    trial = res.trials[0]
    assert trial.family == "catboost" and trial.status == "ok"
    assert len(trial.best_iterations) == 3 and max(trial.best_iterations) < 400  # stopped early
    assert res.cv_score > 0.9  # AUC: the data are easy
    model = res.model
    assert {m.family for m in model.members} == {"catboost"}
    rows = frame.drop(columns=["target"]).head(20)
    np.testing.assert_allclose(
        model.predict_raw(rows), model.predict_raw_records(rows.to_dict("records"))
    )
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_raw(rows), model.predict_raw(rows))


@needs_catboost
def test_catboost_is_in_the_best_preset_only() -> None:
    assert "catboost" in FAMILIES
    assert "catboost" in [f.name for f in families_for(None, 1000)]
    from keizoku.training.presets import PRESETS

    assert PRESETS["best"]["families"] is None  # every installed family
    assert "catboost" not in PRESETS["good"]["families"]


def test_asking_for_catboost_without_the_package_names_the_fix() -> None:
    if INSTALLED:
        assert ALL_FAMILIES["catboost"] is FAMILIES["catboost"]
        return
    assert "catboost" not in FAMILIES
    with pytest.raises(UserInputError, match="pip install catboost"):
        families_for(["catboost"], 100)
