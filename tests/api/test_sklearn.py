"""KeizokuClassifier / KeizokuRegressor: scikit-learn's own checks and its tools."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from keizoku.errors import KeizokuError
from keizoku.sklearn import InputError, KeizokuClassifier, KeizokuRegressor

# Deterministic (max_trials) and cheap: one linear trial on two folds; both estimators go
# through every check of scikit-learn 1.9 in about 15 s on 2 cores.
FAST: dict[str, Any] = {"max_trials": 1, "families": ("linear",), "folds": 2, "budget": 60}


@parametrize_with_checks([KeizokuClassifier(**FAST), KeizokuRegressor(**FAST)])
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    # No check is skipped: every check of check_estimator runs (check_array_api_input skips
    # itself unless SCIPY_ARRAY_API is set).
    check(estimator)


def test_is_classifier_and_is_regressor() -> None:
    assert is_classifier(KeizokuClassifier()) and not is_regressor(KeizokuClassifier())
    assert is_regressor(KeizokuRegressor()) and not is_classifier(KeizokuRegressor())
    assert KeizokuClassifier(budget="30s", families=["knn"]).get_params()["families"] == ["knn"]


def test_pipeline_and_cross_val_score() -> None:
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), KeizokuClassifier(**FAST))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    reg = cross_val_score(KeizokuRegressor(**FAST), *load_diabetes(return_X_y=True), cv=3)
    assert reg.mean() > 0.3  # r2 of a linear model on diabetes is about 0.48


def test_grid_search_tunes_keizoku_parameters() -> None:
    X, y = load_iris(return_X_y=True)
    grid = GridSearchCV(
        KeizokuClassifier(**FAST), {"families": [("linear",), ("knn",)]}, cv=2, error_score="raise"
    )
    grid.fit(X, y)
    assert grid.best_params_["families"] in [("linear",), ("knn",)]
    assert {m.family for m in grid.best_estimator_.model_.members} == set(
        grid.best_params_["families"]
    )
    assert grid.score(X, y) > 0.8


def test_dataframe_input_keeps_names_and_text_categories() -> None:
    penguins = pd.read_csv(
        __import__("pathlib").Path(__file__).resolve().parents[2] / "examples/data/penguins.csv"
    )
    X, y = penguins.drop(columns="species"), penguins["species"]
    clf = clone(KeizokuClassifier(**FAST)).fit(X, y)
    assert list(clf.feature_names_in_) == list(X.columns) and clf.n_features_in_ == 7
    assert list(clf.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    proba = clf.predict_proba(X.head(5))
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)
    assert clf.score(X, y) > 0.9
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        from_array = clf.predict(X.to_numpy())  # scored with the fitted column names
    assert list(from_array) == list(clf.predict(X))
    kinds = {c.name: c.kind for c in clf.model_.schema.features}
    assert kinds["island"] == "categorical" and kinds["year"] == "numeric"


def test_one_class_is_a_keizoku_error_and_a_value_error() -> None:
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(InputError) as info:
        KeizokuClassifier(**FAST).fit(X, ["a"] * 10)
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeizokuError)
    assert info.value.message == (
        "y has only one class ('a'): a classifier needs at least two classes."
    )
    with pytest.raises(InputError, match="train.budget 1s is too short"):
        KeizokuClassifier(**{**FAST, "budget": 1}).fit(X, [0, 1] * 5)
