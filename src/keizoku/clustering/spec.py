"""The ``clustering:`` section of ``keizoku.yaml`` (``task: clustering`` projects).

Light on purpose (pydantic only), so the spec loads without importing scikit-learn::

    clustering:
      algorithms: [kmeans, gmm, hdbscan]   # the families tried
      k_min: 2                             # the range of cluster counts tried
      k_max: 8
      scaling: standard                    # standard | robust | minmax | log | quantile
      choose: consensus                    # consensus (silhouette, Calinski-Harabasz and
                                           # Davies-Bouldin ranks) | silhouette
      sample: 2000                         # rows the silhouette is computed on
      max_trials: null                     # stop after N fitted candidates
      min_gain: -0.05                      # gates: silhouette change a new version may cost
      min_ari: 0.5                         # gates: agreement with the champion's clusters
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from keizoku.sections import Section

__all__ = ["ALGORITHMS", "Algorithm", "Choice", "ClusteringSpec", "Scaling"]

Algorithm = Literal["kmeans", "gmm", "hdbscan"]
Scaling = Literal["standard", "robust", "minmax", "log", "quantile"]
Choice = Literal["consensus", "silhouette"]
ALGORITHMS: tuple[Algorithm, ...] = ("kmeans", "gmm", "hdbscan")


class ClusteringSpec(Section):
    """How ``keizoku train`` searches clusterings, and how a new version is gated."""

    algorithms: list[Algorithm] = Field(default_factory=lambda: list(ALGORITHMS), min_length=1)
    k_min: int = Field(default=2, ge=2, le=100)
    k_max: int = Field(default=8, ge=2, le=100)
    scaling: Scaling = "standard"
    choose: Choice = "consensus"
    sample: int = Field(default=2000, ge=100)
    max_trials: int | None = Field(default=None, ge=1)
    min_cluster_size: int | None = Field(default=None, ge=2)  # HDBSCAN (default: 1% of rows)
    seed: int = 0
    min_gain: float = -0.05
    min_ari: float = Field(default=0.5, ge=-1.0, le=1.0)

    @model_validator(mode="after")
    def _k_range(self) -> ClusteringSpec:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min {self.k_min} is above k_max {self.k_max}: set k_min <= k_max")
        return self
