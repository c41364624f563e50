"""``ClusterModel``: a fitted clustering as a servable model (``task: clustering``).

It satisfies :class:`keizoku.registry.servable.ServableModel` like ``KeizokuModel`` does, so
the registry, the gates' loader, ``keizoku predict`` and the server take it as it is:

* ``classes`` are the cluster numbers ``0 … k-1``;
* ``predict_raw`` gives each row's membership of each cluster (rows sum to 1): the
  mixture's posterior for a Gaussian mixture; for k-means and HDBSCAN a softmax of minus
  the squared distances to the centres over twice the training rows' mean squared distance,
  so that its argmax is the nearest centre;
* ``labels`` is the cluster of largest membership; ``distances`` the Euclidean distance
  (in the scaled feature space) of each row to each centre.

HDBSCAN has no ``predict``: a new row goes to the nearest centroid of the clusters HDBSCAN
found (noise points of the training rows too). See docs/decisions/0018-clustering.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.features.encoder import TabularEncoder

__all__ = ["ClusterMember", "ClusterModel", "DISTANCE", "CLUSTER"]

CLUSTER = "prediction"  # the column of the cluster number in scored files, as for a classifier
DISTANCE = "distance"  # the column of the distance to the assigned cluster's centre


@dataclass
class ClusterMember:
    """The fitted encoder, scaler and clusterer (a :class:`ServableMember`)."""

    family: str
    params: dict[str, Any]
    encoder: TabularEncoder
    estimator: Any  # sklearn KMeans, GaussianMixture or HDBSCAN, fitted
    scaler: Any = None  # a fitted sklearn scaler applied after the encoder, or None
    weight: float = 1.0


@dataclass
class ClusterModel:
    """A fitted clustering: schema, one member, the cluster centres in the scaled space."""

    schema: Schema
    members: list[ClusterMember]
    centers: np.ndarray  # k × d, in the scaled space
    temperature: float  # k-means/HDBSCAN membership: 2 × mean squared distance at training
    metric: str = "silhouette"
    info: dict[str, Any] = field(default_factory=dict)
    task: str = "clustering"

    @property
    def member(self) -> ClusterMember:
        return self.members[0]

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    @property
    def classes(self) -> list[Any]:
        return list(range(self.k))

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.schema.features]

    # ------------------------------------------------------------ the scaled space
    def _scale(self, X: np.ndarray) -> np.ndarray:
        scaler = self.member.scaler
        return np.asarray(scaler.transform(X) if scaler is not None else X, dtype=float)

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of ``frame`` in the space the clusters live in (encoded, then scaled)."""
        self.schema.check_frame(frame)
        return self._scale(self.member.encoder.transform(frame))

    def embed_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        return self._scale(self.member.encoder.transform_records(records))

    def distances_of(self, X: np.ndarray) -> np.ndarray:
        """Euclidean distance of each row of ``X`` (scaled space) to each centre: n × k."""
        sq = (X**2).sum(1)[:, None] - 2 * X @ self.centers.T + (self.centers**2).sum(1)[None, :]
        return np.asarray(np.sqrt(np.maximum(sq, 0.0)), dtype=float)

    def membership_of(self, X: np.ndarray) -> np.ndarray:
        """Each row's membership of each cluster (n × k, rows sum to 1)."""
        if self.member.family == "gmm":
            return np.asarray(self.member.estimator.predict_proba(X), dtype=float)
        logits = -(self.distances_of(X) ** 2) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        out = np.exp(logits)
        return np.asarray(out / out.sum(axis=1, keepdims=True))

    # ------------------------------------------------------------ ServableModel
    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.membership_of(self.embed(frame))

    def predict_raw_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        return self.membership_of(self.embed_records(records))

    def labels(self, raw: np.ndarray) -> list[Any]:
        return [int(i) for i in np.asarray(raw).argmax(axis=1)]

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        return self.labels(self.predict_raw(frame))

    def predict_records(self, records: list[dict[str, Any]]) -> list[Any]:
        return self.labels(self.predict_raw_records(records))

    def assign(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cluster, distance to its centre, membership) of each row of ``X`` (scaled)."""
        member = self.membership_of(X)
        cluster = member.argmax(axis=1)
        distance = self.distances_of(X)[np.arange(len(X)), cluster]
        return cluster, distance, member

    def assign_records(
        self, records: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``assign`` from plain dicts (the serving fast path)."""
        return self.assign(self.embed_records(records))

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus ``prediction`` (the cluster), ``distance`` and ``proba_<cluster>``."""
        cluster, distance, member = self.assign(self.embed(frame))
        out = frame.copy()
        out[CLUSTER] = cluster.astype(int)
        out[DISTANCE] = distance
        for j in range(self.k):
            out[f"proba_{j}"] = member[:, j]
        return out
