"""Clustering on the shared sets with known groups (skipped where they are absent).

Floors, not exact values: measured ARI at k_max=4 (k-means and mixtures) was 0.65 on
penguins (species removed; k=2 joins Adelie and Chinstrap) and 0.19 against wholesale's
Channel (k=2 splits off the large grocery buyers).
"""

from __future__ import annotations

import warnings

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from keizoku.clustering.spec import ClusteringSpec
from keizoku.clustering.train import ClusterResult, fit_clustering
from keizoku.data.schema import infer_schema
from kzsupport import need_shared

SPEC = ClusteringSpec(k_max=4, algorithms=["kmeans", "gmm"])


def _fit(frame: pd.DataFrame) -> ClusterResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, None, task="clustering")
    return fit_clustering(frame, schema, SPEC)


def test_penguins_without_species_cluster_by_species():
    frame = pd.read_csv(need_shared("tabular/penguins.csv"))
    result = _fit(frame.drop(columns="species"))  # categorical island/sex and missing values
    assert adjusted_rand_score(frame["species"], result.clusters) > 0.5


def test_wholesale_clusters_relate_to_the_channel_and_are_profiled():
    frame = pd.read_csv(need_shared("tabular/wholesale.csv"))
    result = _fit(frame.drop(columns=["Channel", "Region"]))
    assert adjusted_rand_score(frame["Channel"], result.clusters) > 0.1
    named = {f["feature"] for c in result.profile for f in c["features"]}
    assert named <= {"Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"}
