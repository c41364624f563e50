"""How k is chosen (consensus of three indices), log/quantile scaling of skewed numbers, and
clustering from the Python API (``keizoku.cluster``), on planted data."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import keizoku
from keizoku.clustering.spec import ClusteringSpec
from keizoku.clustering.train import ClusterResult, fit_clustering
from keizoku.data.schema import infer_schema
from keizoku.errors import UserInputError


def _blobs(k: int = 4, n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.vstack([np.zeros(3), np.eye(3)])[:k]  # the origin and three axes
    groups = np.repeat(np.arange(k), n)
    X = centres[groups] + rng.normal(0, 1, (k * n, 3))
    return pd.DataFrame(X, columns=["a", "b", "c"]), groups


def _skewed(seed: int = 0) -> pd.DataFrame:
    """Two groups told apart by the order of magnitude of a heavy-tailed 'spend'."""
    rng = np.random.default_rng(seed)
    spend = np.concatenate([rng.lognormal(2, 0.4, 150), rng.lognormal(5, 0.4, 150)])
    return pd.DataFrame({"spend": spend, "visits": rng.normal(10, 2, 300),
                         "region": rng.choice(["n", "s"], 300)})  # fmt: skip


def _fit(frame: pd.DataFrame, **keys: Any) -> ClusterResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, None, task="clustering")
    return fit_clustering(frame, schema, ClusteringSpec(**keys), budget_s=600)


def test_consensus_ranks_three_indices_and_finds_the_planted_k() -> None:
    frame, groups = _blobs()
    result = _fit(frame, algorithms=["kmeans"], k_max=7, max_trials=6)
    assert result.model.k == 4 and "best mean rank" in result.reason
    assert result.reason.endswith("on a common sample")
    board = result.leaderboard
    assert {"silhouette", "calinski_harabasz", "davies_bouldin"} <= set(board.columns)
    chosen = board[board["chosen"] == "*"].iloc[0]
    ok = board[board["status"] == "ok"]
    # the winner is at least as good as every other candidate on the mean of its ranks
    ranks = pd.concat([ok["silhouette"].rank(ascending=False),
                       ok["calinski_harabasz"].rank(ascending=False),
                       ok["davies_bouldin"].rank()], axis=1).mean(axis=1)  # fmt: skip
    assert ranks[chosen.name] == ranks.min()
    alone = _fit(frame, algorithms=["kmeans"], k_max=7, max_trials=6, choose="silhouette")
    assert alone.reason.startswith("highest silhouette")


def test_log_scaling_transforms_only_skewed_numbers_and_serves_the_same_space() -> None:
    frame = _skewed()
    result = _fit(frame, algorithms=["kmeans"], k_max=3, max_trials=2, scaling="log")
    scaler: Any = result.model.member.scaler
    names = list(result.model.member.encoder.feature_names_out_)
    assert [names[j] for j in scaler.columns_] == ["spend"]  # visits is not skewed
    X = result.model.embed(frame)
    assert X[:, names.index("spend")].std() == pytest.approx(1.0, abs=1e-6)
    assert set(np.unique(X[:, names.index("region=n")])) == {0.0, 1.0}  # one-hot untouched
    records = json.loads(frame.head(5).to_json(orient="records"))
    assert np.allclose(result.model.embed_records(records), X[:5])
    truth = np.repeat([0, 1], 150)
    agreement = max(np.mean(result.clusters == truth), np.mean(result.clusters != truth))
    assert result.model.k == 2 and agreement > 0.95


def test_quantile_scaling_maps_numbers_onto_a_normal() -> None:
    frame = _skewed(1)
    result = _fit(frame, algorithms=["kmeans"], k_max=2, max_trials=1, scaling="quantile")
    names = list(result.model.member.encoder.feature_names_out_)
    spend = result.model.embed(frame)[:, names.index("spend")]
    assert abs(float(pd.Series(spend).skew())) < 0.2 and abs(float(np.median(spend))) < 0.1


def test_keizoku_cluster_from_python_predicts_clusters_and_membership() -> None:
    frame, groups = _blobs(n=40, seed=2)
    model = keizoku.cluster(frame, algorithms=["kmeans", "gmm"], k_max=5, max_trials=8)
    fitted: Any = model.model  # a ClusteringModel behind the ServableModel protocol
    assert model.task == "clustering" and fitted.k == 4
    labels = model.predict(frame)
    assert list(labels.index) == list(frame.index)
    assert pd.crosstab(labels, groups).max(axis=1).sum() == len(frame)  # the planted groups
    proba = model.predict_proba(frame.head(10))
    assert list(proba.columns) == [0, 1, 2, 3] and np.allclose(proba.sum(axis=1), 1.0)
    assert len(model.leaderboard()) == 8 and len(model.model.info["profile"]) == 4
    with pytest.raises(UserInputError, match="keizoku train` on a task: clustering spec"):
        model.register("groups")
    with pytest.raises(
        UserInputError, match=r"keizoku.cluster\(\): clustering.k_max = 1 is not valid"
    ):
        keizoku.cluster(frame, k_max=1)
