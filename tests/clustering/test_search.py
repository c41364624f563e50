"""The clustering search on scikit-learn's bundled sets, without the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.metrics import adjusted_rand_score

from keizoku.clustering.model import ClusterModel
from keizoku.clustering.spec import ClusteringSpec
from keizoku.clustering.train import ClusterResult, fit_clustering
from keizoku.data.schema import Schema, infer_schema
from keizoku.errors import DataError
from keizoku.registry.servable import ServableModel


def _frame(loader: object) -> tuple[pd.DataFrame, np.ndarray]:
    data = loader(as_frame=True)  # type: ignore[operator]
    return data.frame.drop(columns="target"), data.target.to_numpy()


def _schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame, None, task="clustering")


@pytest.fixture(scope="module")
def wine() -> tuple[pd.DataFrame, np.ndarray, ClusterResult]:
    frame, y = _frame(load_wine)
    cfg = ClusteringSpec(
        k_min=2, k_max=4, algorithms=["kmeans", "gmm", "hdbscan"], choose="silhouette"
    )
    return frame, y, fit_clustering(frame, _schema(frame), cfg)


def test_wine_clusters_find_the_cultivars(wine: tuple[pd.DataFrame, np.ndarray, ClusterResult]):
    frame, y, result = wine
    assert result.model.k == 3  # three cultivars, found without the label
    assert adjusted_rand_score(y, result.clusters) > 0.8
    assert (
        result.chosen.silhouette
        == max(t.silhouette for t in result.trials if t.status == "ok" and t.family != "gmm")
        or result.chosen.family == "gmm"
    )


def test_leaderboard_lists_every_trial_and_marks_the_winner(
    wine: tuple[pd.DataFrame, np.ndarray, ClusterResult],
):
    _, _, result = wine
    board = result.leaderboard
    assert len(board) == len(result.trials)
    assert set(board["family"]) == {"kmeans", "gmm", "hdbscan"}
    chosen = board[board["chosen"] == "*"]
    assert len(chosen) == 1 and int(chosen["trial"].iloc[0]) == result.chosen.number
    assert board.loc[board["family"] == "gmm", "bic"].notna().all()


def test_profile_sizes_add_up_and_name_distinguishing_features(
    wine: tuple[pd.DataFrame, np.ndarray, ClusterResult],
):
    frame, _, result = wine
    profile = result.profile
    assert sum(c["size"] for c in profile) == len(frame)
    for c in profile:
        assert c["features"], c
        assert all(f["feature"] in frame.columns for f in c["features"])
        effects = [abs(f["effect"]) for f in c["features"]]
        assert effects == sorted(effects, reverse=True)


def test_the_model_is_servable_and_scores_rows_and_records_alike(
    wine: tuple[pd.DataFrame, np.ndarray, ClusterResult],
):
    frame, _, result = wine
    model = result.model
    assert isinstance(model, ServableModel)
    head = frame.head(20)
    raw = model.predict_raw(head)
    assert raw.shape == (20, model.k)
    assert np.allclose(raw.sum(axis=1), 1.0)
    records = model.predict_raw_records(head.to_dict(orient="records"))
    assert np.allclose(raw, records)
    scored = model.score_frame(head)
    assert list(scored["prediction"]) == model.predict(head)
    assert list(scored["prediction"]) == list(result.clusters[:20])
    distances = model.distances_of(model.embed(head))
    picked = distances[np.arange(20), scored["prediction"].to_numpy()]
    assert np.allclose(scored["distance"], picked)


def test_kmeans_serves_the_nearest_centre_and_hdbscan_the_nearest_centroid():
    frame, _ = _frame(load_iris)
    for family in ("kmeans", "hdbscan"):
        cfg = ClusteringSpec(k_min=3, k_max=3, algorithms=[family])
        model: ClusterModel = fit_clustering(frame, _schema(frame), cfg).model
        X = model.embed(frame)
        assert model.predict(frame) == list(model.distances_of(X).argmin(axis=1))
    # k-means' own predict agrees with the nearest centre
    cfg = ClusteringSpec(k_min=3, k_max=3, algorithms=["kmeans"])
    model = fit_clustering(frame, _schema(frame), cfg).model
    assert model.predict(frame) == list(model.member.estimator.predict(model.embed(frame)))


def test_max_trials_stops_the_search():
    frame, _ = _frame(load_iris)
    cfg = ClusteringSpec(k_min=2, k_max=8, max_trials=3)
    result = fit_clustering(frame, _schema(frame), cfg)
    assert len(result.trials) == 3


def test_a_constant_column_is_a_clear_error():
    frame, _ = _frame(load_iris)
    schema = _schema(frame)
    frame["sepal width (cm)"] = 3.0  # constant in the training data, a feature in the schema
    with pytest.raises(DataError, match=r"Column 'sepal width \(cm\)' is constant .*ignored"):
        fit_clustering(frame, schema, ClusteringSpec(max_trials=1))


def test_too_few_rows_is_a_clear_error():
    frame, _ = _frame(load_iris)
    with pytest.raises(DataError, match="too few"):
        fit_clustering(frame.head(4), _schema(frame), ClusteringSpec(k_min=2))


def test_categorical_columns_are_clustered_through_the_encoder():
    rng = np.random.default_rng(0)
    n = 300
    group = rng.integers(0, 2, n)
    frame = pd.DataFrame({
        "x": rng.normal(group * 4.0, 1.0),
        "colour": np.where(group == 1, "red", "blue"),
    })  # fmt: skip
    cfg = ClusteringSpec(k_min=2, k_max=3, algorithms=["kmeans"])
    result = fit_clustering(frame, _schema(frame), cfg)
    assert adjusted_rand_score(group, result.clusters) > 0.9
    texts = " ".join(f["text"] for c in result.profile for f in c["features"])
    assert "colour = " in texts
