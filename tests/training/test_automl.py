"""The search on scikit-learn's bundled data: scores, constraints, folds and ensembles.

Searches are bounded by ``max_trials`` (deterministic, independent of the clock);
the budget is only an upper bound.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from keizoku.data.schema import infer_schema
from keizoku.errors import KeizokuWarning, UserInputError
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.cv import TrialResult, make_folds
from keizoku.training.ensemble import greedy_ensemble
from keizoku.training.metrics import get_metric
from keizoku.training.search import SearchResult, run_search


def frame_of(loader, target: str = "target") -> pd.DataFrame:  # type: ignore[no-untyped-def]
    data = loader(as_frame=True)
    return data.frame.rename(columns={"target": target})


def schema_of(frame: pd.DataFrame, target: str, **kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return infer_schema(frame, target, **kw)


def search(frame: pd.DataFrame, target: str, **cfg: object) -> SearchResult:
    settings: dict[str, object] = {"budget": "120s", "max_trials": 4, **cfg}
    data = TrainingData.build(frame, schema_of(frame, target))
    return run_search(data, TrainSpec.model_validate(settings))


@pytest.fixture(scope="module")
def cancer_result():  # type: ignore[no-untyped-def]
    frame = frame_of(load_breast_cancer)
    cfg = {"models": ["lightgbm", "linear"], "max_latency_ms": 10.0, "preset": "fast"}
    return frame, search(frame, "target", **cfg)


def test_binary_search_scores_well_and_fast_path_matches(cancer_result) -> None:  # type: ignore[no-untyped-def]
    frame, res = cancer_result
    assert res.metric.name == "roc_auc"
    assert res.cv_score > 0.97
    board = res.leaderboard
    assert list(board.columns[:8]) == [
        "trial",
        "model",
        "score",
        "std",
        "fit_time_s",
        "latency_ms",
        "size_mb",
        "status",
    ]
    assert board["chosen"].sum() >= 1
    assert (board["score"].dropna().diff().dropna() <= 1e-12).all()  # sorted best first
    sample = frame.head(40)
    np.testing.assert_allclose(
        res.model.predict_raw(sample), res.model.predict_raw_records(sample.to_dict("records"))
    )
    assert set(res.model.predict(sample)) <= {0, 1}


def test_chosen_models_respect_the_latency_limit(cancer_result) -> None:  # type: ignore[no-untyped-def]
    _, res = cancer_result
    board = res.leaderboard
    chosen = board[board["chosen"] > 0]
    assert chosen["latency_ms"].sum() <= 10.0  # the max_latency_ms rule
    assert set(board.loc[board["latency_ms"] > 10.0, "status"]) <= {"too slow"}


def test_multiclass_random_search_keeps_string_labels() -> None:
    frame = frame_of(load_iris, "species")
    names = np.array(["setosa", "versicolor", "virginica"])
    frame["species"] = names[frame["species"]]
    res = search(frame, "species", search="random", preset="fast", models=["linear", "lightgbm"])
    assert res.metric.name == "log_loss" and res.cv_score < 0.35
    assert res.model.classes == list(names)
    scored = res.model.score_frame(frame.head(5))
    assert list(scored.columns[-4:]) == [
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    np.testing.assert_allclose(scored.filter(like="proba_").sum(axis=1), 1.0)


def test_regression_grid_search_beats_predicting_the_mean() -> None:
    frame = frame_of(load_diabetes, "progression")
    res = search(frame, "progression", search="grid", preset="fast", max_trials=3)
    assert res.metric.name == "rmse"
    assert res.cv_score < 0.85 * frame["progression"].std()


def test_a_class_too_small_for_the_folds_warns_and_falls_back() -> None:
    frame = frame_of(load_iris)
    frame = pd.concat([frame[frame["target"] < 2], frame[frame["target"] == 2].head(2)])
    with pytest.warns(KeizokuWarning) as caught:
        res = search(frame, "target", preset="fast", models=["linear"], max_trials=1)
    message = str(caught[0].message)
    assert message.startswith("Class(es) '2' (2 rows) have fewer rows than the 3 folds")
    assert res.model.classes == [0, 1, 2]


def test_impossible_limits_fail_with_the_fix_named() -> None:
    frame = frame_of(load_breast_cancer)
    with pytest.raises(UserInputError) as exc:
        search(frame, "target", preset="fast", max_latency_ms=1e-6, models=["linear"], max_trials=1)
    assert "No candidate finished within the budget and limits" in str(exc.value)
    assert "relax --max-latency-ms / --max-size-mb" in str(exc.value)


def test_unknown_metric_lists_the_valid_ones() -> None:
    with pytest.raises(UserInputError) as exc:
        get_metric("rmse", "binary")
    assert str(exc.value).startswith("Metric 'rmse' does not fit a binary task. Choose one of:")


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_folds_are_disjoint_and_cover_every_row(task: str) -> None:
    y = np.array([0, 1] * 50) if task == "binary" else np.linspace(0, 1, 100)
    folds = make_folds(y, task, 5, 0, None)
    valid = np.concatenate([va for _, va in folds])
    assert sorted(valid.tolist()) == list(range(100))
    for tr, va in folds:
        assert not set(tr) & set(va)
    if task == "binary":
        assert all(y[va].mean() == 0.5 for _, va in folds)


def test_greedy_ensemble_mixes_complementary_models() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    noise_a, noise_b = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    a = 1 / (1 + np.exp(-(2 * (y - 0.5) + noise_a)))
    b = 1 / (1 + np.exp(-(2 * (y - 0.5) + noise_b)))
    bad = rng.random(400)
    trials = []
    for i, p in enumerate([a, b, bad]):
        t = TrialResult(i, "x", {})
        t.oof = np.column_stack([1 - p, p])
        trials.append(t)
    weights, score = greedy_ensemble(trials, y, get_metric("roc_auc", "binary"))
    assert set(weights) == {0, 1}
    single = max(get_metric("roc_auc", "binary")(y, p) for p in (a, b))
    assert score > single


STABLE = ["trial", "model", "score", "std", "status", "chosen", "params"]  # not timings


def test_max_trials_gives_the_same_leaderboard_twice() -> None:
    frame = frame_of(load_breast_cancer)
    cfg = {"models": ["lightgbm", "linear"], "max_trials": 4, "seed": 7, "preset": "fast"}
    first, second = search(frame, "target", **cfg), search(frame, "target", **cfg)
    pd.testing.assert_frame_equal(first.leaderboard[STABLE], second.leaderboard[STABLE])
    assert sum(first.leaderboard["status"] == "ok") == 4
    assert first.cv_score == second.cv_score


def test_max_trials_stops_long_before_the_budget() -> None:
    frame = frame_of(load_iris)
    res = search(frame, "target", budget="1h", max_trials=2, models=["linear"], search="random")
    assert len(res.trials) == 2 and res.elapsed_s < 60
    assert res.max_trials == 2


def test_training_data_encodes_the_target_with_the_label_codec() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 5, "y": ["b", "a", None, "b"] * 5})
    data = TrainingData.build(frame, schema_of(frame, "y"))
    assert len(data.frame) == 15 and data.frame.index.tolist() == list(range(15))
    assert data.codec.classes == ["a", "b"]
    assert data.y.tolist() == [1, 0, 1] * 5
