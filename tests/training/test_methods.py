"""The search's methods (decision 0012): bagged fold models, zero-shot portfolio, calibration,
presets and the time spent per phase. Searches are bounded by ``max_trials`` (deterministic)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from keizoku.data.schema import infer_schema
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.model import apply_temperature, fit_temperature, raw_predict
from keizoku.training.presets import PRESETS, preset
from keizoku.training.search import SearchResult, run_search
from keizoku.training.zoo import FAMILIES


def _data(loader) -> TrainingData:  # type: ignore[no-untyped-def]
    frame = loader(as_frame=True).frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainingData.build(frame, infer_schema(frame, "target"))


def _search(data: TrainingData, **cfg: object) -> SearchResult:
    settings: dict[str, object] = {"budget": "120s", "max_trials": 3, **cfg}
    return run_search(data, TrainSpec.model_validate(settings))


@pytest.fixture(scope="module")
def iris() -> TrainingData:
    return _data(load_iris)


@pytest.fixture(scope="module")
def bagged(iris: TrainingData) -> SearchResult:
    return _search(iris, models=["lightgbm"], ensemble=False, folds=3)


def test_the_default_preset_serves_the_fold_models_as_one_bag(
    iris: TrainingData, bagged: SearchResult
) -> None:
    model = bagged.model
    assert model.info["bagged"] is True  # not the last-fold fallback the CLI warns about:
    assert model.info["refit_on_all_rows"] is True  # together the folds saw every row
    assert [m.family for m in model.members] == ["lightgbm"] * 3  # one model per fold
    assert len({id(m.encoder) for m in model.members}) == 1  # encoded once per request
    frame = iris.frame.drop(columns=["target"]).head(30)
    X = model.members[0].encoder.transform(frame)
    mean = np.mean([raw_predict(m.estimator, X, "multiclass") for m in model.members], axis=0)
    np.testing.assert_allclose(model.predict_raw(frame), mean)
    np.testing.assert_allclose(
        model.predict_raw(frame), model.predict_raw_records(frame.to_dict("records"))
    )


def test_the_fast_preset_refits_one_model_on_all_rows(iris: TrainingData) -> None:
    res = _search(iris, models=["lightgbm"], ensemble=False, preset="fast", max_trials=1)
    assert res.model.info["bagged"] is False and res.model.info["refit_on_all_rows"] is True
    assert len(res.model.members) == 1
    assert list(res.phases)[:3] == ["search", "ensemble", "refit"]


def test_phases_account_for_the_search_time(bagged: SearchResult) -> None:
    assert list(bagged.phases)[:3] == ["search", "ensemble", "bag"]
    assert all(v >= 0 for v in bagged.phases.values())
    assert sum(bagged.phases.values()) <= bagged.elapsed_s + 1e-6
    assert bagged.phases["search"] > 0.5 * sum(bagged.phases.values())


def test_the_portfolio_is_tried_after_the_defaults_before_the_search(iris: TrainingData) -> None:
    lgbm = FAMILIES["lightgbm"]
    res = _search(iris, models=["lightgbm", "linear"], max_trials=4)
    params = [t.params for t in sorted(res.trials, key=lambda t: t.number)]
    assert params[0] == lgbm.defaults
    assert params[2] == {**lgbm.defaults, **lgbm.portfolio[0]}
    assert params[3] == {**lgbm.defaults, **lgbm.portfolio[1]}
    fast = _search(iris, models=["lightgbm", "linear"], max_trials=3, preset="fast")
    assert fast.trials[2].params != params[2]  # no portfolio in `fast`: the sampler's pick


def test_balanced_is_an_alias_of_the_default_preset(iris: TrainingData) -> None:
    assert TrainSpec().preset == "good" and preset("balanced") is PRESETS["good"]
    runs = [
        _search(iris, models=["linear"], preset=name, max_trials=2).leaderboard
        for name in ("balanced", "good")
    ]
    pd.testing.assert_frame_equal(
        runs[0].drop(columns=["fit_time_s", "latency_ms", "size_mb"]),
        runs[1].drop(columns=["fit_time_s", "latency_ms", "size_mb"]),
    )


def test_temperature_scaling_fixes_overconfidence_and_leaves_calibrated_alone() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    right = rng.random(3000) < 0.7  # 70 % right, but claimed with 99 % confidence
    top = np.where(right, y, (y + 1) % 3)
    over = np.full((3000, 3), 0.005)
    over[np.arange(3000), top] = 0.99
    t = fit_temperature(y, over)
    assert t > 1.5  # softened

    def loss(p: np.ndarray) -> float:
        return float(-np.mean(np.log(p[np.arange(3000), y])))

    assert loss(apply_temperature(over, t)) < 0.7 * loss(over)
    np.testing.assert_allclose(apply_temperature(over, t).sum(axis=1), 1.0)
    calibrated = np.full((3000, 3), 0.15)
    calibrated[np.arange(3000), top] = 0.7
    assert fit_temperature(y, calibrated) == 1.0  # no gain worth a change


def test_calibration_is_applied_only_when_it_lowers_oof_log_loss(bagged: SearchResult) -> None:
    data = _data(load_breast_cancer)
    res = _search(data, models=["linear"], metric="log_loss", max_trials=1, preset="fast")
    assert res.model.info["temperature"] == res.model.temperature
    before, after = res.trials[0].oof, res.oof
    assert res.metric(data.y, after) <= res.metric(data.y, before)  # type: ignore[arg-type]
    assert res.metric(data.y, after) == pytest.approx(res.cv_score)  # the score reported
    assert bagged.model.temperature == 1.0  # a bag is never temperature-scaled
