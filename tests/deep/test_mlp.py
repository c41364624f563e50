"""The ``torch_mlp`` family: the estimator on its own (determinism, early stopping, category
embeddings, pickling) and inside the search (cross-validation, bagging, refit, ensembles).

Searches are bounded by ``max_trials``; the data are scikit-learn's bundled sets or planted.
"""

from __future__ import annotations

import math
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.metrics import log_loss

from keizoku.data.schema import infer_schema
from keizoku.deep import TabularMLP, bind_encoder, category_columns
from keizoku.features.encoder import TabularEncoder
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.model import raw_predict
from keizoku.training.presets import PRESETS
from keizoku.training.search import SearchResult, run_search
from keizoku.training.zoo import FAMILIES
from kzsupport import need_module

need_module("torch", reason="the torch_mlp family needs torch (pip install 'keizoku[torch]')")


def _data(frame: pd.DataFrame) -> TrainingData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainingData.build(frame, infer_schema(frame, "target"))


def _search(data: TrainingData, **cfg: object) -> SearchResult:
    settings: dict[str, object] = {"budget": "120s", "max_trials": 1, "folds": 3, **cfg}
    return run_search(data, TrainSpec.model_validate(settings))


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def _planted(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """The class is the colour (5 levels) unless the number is large; a second category
    column has integer codes (the encoder writes their values, not 0..k-1)."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "amber", "violet"], n)
    x = rng.normal(size=n)
    site = rng.choice([10, 20, 30], n)
    target = np.where(x > 1.5, "hot", np.where(np.isin(colour, ["red", "blue"]), "a", "b"))
    frame = pd.DataFrame({"colour": colour, "x": x, "site": site, "target": target})
    frame.loc[rng.random(n) < 0.05, "colour"] = None
    return frame


# ------------------------------------------------------------------ the estimator


def test_the_same_seed_gives_the_same_network_on_the_cpu(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    fits = [TabularMLP(max_epochs=5, seed=s, n_jobs=1).fit(X, y) for s in (7, 7, 8)]
    probs = [f.predict_proba(X) for f in fits]
    np.testing.assert_array_equal(probs[0], probs[1])  # bit for bit
    assert not np.allclose(probs[0], probs[2])  # the seed matters
    import torch

    assert not torch.are_deterministic_algorithms_enabled()  # the fit put torch back


def test_early_stopping_keeps_the_best_validation_epoch(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    Xt, yt, Xv, yv = X[:400], y[:400], X[400:], y[400:]
    est = TabularMLP(max_epochs=300, patience=5, lr=1e-2, n_jobs=1).fit(Xt, yt, eval_set=(Xv, yv))
    val = [float("inf") if v is None else float(v) for _, _, v in est.history_]
    assert len(val) < 300  # it stopped early
    assert est.best_epoch_ == 1 + int(np.argmin(val))
    assert len(val) == est.best_epoch_ + 5  # five epochs without improvement, then stop
    # The weights kept are the best epoch's: their validation loss is the history's minimum.
    assert log_loss(yv, est.predict_proba(Xv)) == pytest.approx(min(val), rel=1e-4)


def test_an_epoch_callback_sees_every_epoch_and_can_stop_the_fit(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    seen: list[tuple[int, float, float | None]] = []

    def on_epoch(epoch: int, train_loss: float, val_loss: float | None) -> bool:
        seen.append((epoch, train_loss, val_loss))
        return epoch == 3

    est = TabularMLP(max_epochs=50, n_jobs=1).fit(X, y, eval_set=(X, y), on_epoch=on_epoch)
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert seen == est.history_
    assert all(math.isfinite(t) and v is not None for _, t, v in seen)


def test_a_validation_class_the_training_rows_lack_is_left_out_of_the_loss(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    yv = y[400:].copy()
    yv[:5] = 7  # a class the training rows never had (a rare class can miss a fold)
    est = TabularMLP(max_epochs=5, n_jobs=1).fit(X[:400], y[:400], eval_set=(X[400:], yv))
    assert list(est.classes_) == [0, 1]
    assert all(v is not None and math.isfinite(v) for _, _, v in est.history_)


def test_category_columns_go_through_embeddings() -> None:
    frame = _planted()
    features = frame.drop(columns=["target"])
    schema = infer_schema(frame, "target")
    enc = TabularEncoder(schema.features, mode="ordinal").fit(features)
    cats = category_columns(enc)
    names = [c.name for c in schema.features]
    assert sorted(cats) == sorted(names.index(c) for c in ("colour", "site"))
    assert cats[names.index("site")] == [10.0, 20.0, 30.0]  # the values the encoder writes
    X, y = enc.transform(features), frame["target"].astype("category").cat.codes.to_numpy()
    est = bind_encoder(TabularMLP(task="multiclass", max_epochs=60, n_jobs=1), enc)
    est.fit(X[:450], y[:450], eval_set=(X[450:], y[450:]))
    assert est.arch_["cardinalities"] == [5 + 2, 3 + 2]  # + missing + unseen
    assert (est.predict(X[450:]) == y[450:]).mean() > 0.9
    # Unseen and missing values are codes of their own, never an error.
    odd = features.iloc[:2].copy()
    odd["colour"], odd["site"] = ["teal", None], [99, 10]
    num, codes = est._inputs(enc.transform(odd))
    assert codes[:, 0].tolist() == [1, 0]  # unseen, missing
    # The encoder writes an unlisted integer code as missing (NaN): no separate "unseen".
    assert codes[:, 1].tolist() == [0, 2]  # missing, the first level
    assert np.isfinite(est.predict_proba(enc.transform(odd))).all()


def test_a_pickled_network_holds_numpy_only_and_predicts_the_same(
    cancer: tuple[np.ndarray, np.ndarray], tmp_path: object
) -> None:
    X, y = cancer
    est = TabularMLP(max_epochs=5, n_jobs=1).fit(X, y)
    blob = pickle.dumps(est, protocol=5)
    assert b"torch" not in blob  # no torch class or storage in the file: NumPy arrays only
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(back.embed(X[:3]), est.embed(X[:3]))
    assert back.embed(X[:3]).shape == (3, est.width)


def test_regression_predicts_on_the_target_scale() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = 1000 + 50 * X[:, 0] - 30 * X[:, 1]
    est = TabularMLP(task="regression", max_epochs=200, lr=1e-2, n_jobs=1).fit(
        X[:400], y[:400], eval_set=(X[400:], y[400:])
    )
    rmse = float(np.sqrt(np.mean((est.predict(X[400:]) - y[400:]) ** 2)))
    assert rmse < 0.2 * y.std()


# ------------------------------------------------------------------ in the search


@pytest.fixture(scope="module")
def iris_search() -> SearchResult:
    return _search(_data(load_iris(as_frame=True).frame), models=["torch_mlp"], ensemble=False)


def test_the_family_is_available_but_not_in_the_default_preset() -> None:
    assert "torch_mlp" in FAMILIES
    assert "torch_mlp" not in PRESETS["good"]["families"]
    assert PRESETS["best"]["families"] is None  # every installed family: torch_mlp too


def test_each_fold_stops_early_and_the_fold_networks_are_served_as_a_bag(
    iris_search: SearchResult,
) -> None:
    (trial,) = iris_search.trials
    assert trial.family == "torch_mlp" and trial.status == "ok"
    assert len(trial.best_iterations) == 3 and max(trial.best_iterations) < 100
    model = iris_search.model
    assert [m.family for m in model.members] == ["torch_mlp"] * 3
    frame = load_iris(as_frame=True).frame.drop(columns=["target"]).head(20)
    X = model.members[0].encoder.transform(frame)
    mean = np.mean([raw_predict(m.estimator, X, "multiclass") for m in model.members], axis=0)
    np.testing.assert_allclose(model.predict_raw(frame), mean, rtol=1e-6)
    np.testing.assert_allclose(
        model.predict_raw(frame), model.predict_raw_records(frame.to_dict("records"))
    )
    assert trial.mean > -0.3  # log loss on iris


def test_the_trial_keeps_each_folds_learning_curve(iris_search: SearchResult) -> None:
    (trial,) = iris_search.trials
    assert len(trial.curves) == 3
    for curve, best in zip(trial.curves, trial.best_iterations, strict=True):
        assert [e for e, _, _ in curve] == list(range(1, len(curve) + 1))
        assert best == 1 + int(np.argmin([float(v or np.inf) for _, _, v in curve]))


def test_a_refit_trains_for_the_folds_mean_best_epoch(tmp_path: object) -> None:
    res = _search(_data(_planted()), models=["torch_mlp"], ensemble=False, preset="fast")
    (trial,) = res.trials
    (member,) = res.model.members
    epochs = max(10, math.ceil(np.mean(trial.best_iterations) * 1.1))
    assert member.estimator.max_epochs == epochs
    assert len(member.estimator.history_) == epochs  # no validation rows: every epoch
    assert member.estimator.categories  # the refit's network was bound to its encoder too
    path = f"{tmp_path}/model.joblib"
    joblib.dump(res.model, path)
    frame = _planted(50, seed=1).drop(columns=["target"])
    np.testing.assert_array_equal(
        joblib.load(path).predict_raw(frame), res.model.predict_raw(frame)
    )


def test_the_network_joins_an_ensemble_with_other_families() -> None:
    res = _search(
        _data(load_breast_cancer(as_frame=True).frame), models=["torch_mlp", "linear"], max_trials=2
    )
    assert {t.family for t in res.trials} == {"torch_mlp", "linear"}
    assert {m.family for m in res.model.members} == {"torch_mlp", "linear"}


def test_the_reports_learning_curve_refits_the_network_bound_to_its_encoder(
    iris_search: SearchResult,
) -> None:
    from keizoku.evaluation.learning import learning_curve
    from keizoku.training.metrics import get_metric

    frame = load_iris(as_frame=True).frame
    y = frame.pop("target").to_numpy()
    curve = learning_curve(
        iris_search.model, frame, y, get_metric("log_loss", "multiclass"), budget_s=120
    )
    assert curve["family"] == "torch_mlp" and curve["complete"]
    assert all(math.isfinite(p["valid"]) for p in curve["points"])
