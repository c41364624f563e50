"""The clustering search: encode, scale, fit candidates, choose by silhouette / BIC.

Every candidate is fitted on the same encoded, scaled rows (the project's
``TabularEncoder`` in one-hot mode: numbers z-scored, categories one-hot, then the spec's
``clustering.scaling``) and scored the same way:

* the **silhouette** of its assignment (as served: HDBSCAN's rows by nearest centroid) on one
  seeded sample of ``clustering.sample`` rows shared by every candidate;
* for a Gaussian mixture, its **BIC** too: among the mixtures, BIC picks the number of
  components (the likelihood's own criterion); that mixture then competes by silhouette;
* the **Davies-Bouldin** index, shown on the leaderboard.

The winner has the highest silhouette. Candidates are tried cheapest first (k-means for each
k from ``k_min`` to ``k_max``, HDBSCAN at a few minimum cluster sizes, then a mixture per k) until
``max_trials`` (then the clock is not looked at: the same data and spec give the same
result) or, without it, the time budget runs out.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.clustering.model import ClusterMember, ClusterModel
from keizoku.clustering.scaling import make_scaler
from keizoku.clustering.spec import ClusteringSpec
from keizoku.data.labels import canonical
from keizoku.data.schema import Schema
from keizoku.errors import DataError
from keizoku.features.encoder import TabularEncoder

__all__ = [
    "ClusterResult",
    "ClusterTrial",
    "check_features",
    "fit_clustering",
    "profile_clusters",
    "silhouette_on",
]

HDBSCAN_ROWS = 5000  # HDBSCAN is fitted on at most this many rows (seeded sample)
HDBSCAN_SIZES = (0.01, 0.025, 0.05)  # minimum cluster sizes tried, as shares of the rows
TOP_FEATURES = 3  # distinguishing features listed per cluster


@dataclass
class ClusterTrial:
    """One fitted candidate and its scores."""

    number: int
    family: str
    params: dict[str, Any]
    k: int = 0
    silhouette: float = float("nan")
    bic: float | None = None
    davies_bouldin: float = float("nan")
    calinski_harabasz: float = float("nan")
    fit_time_s: float = 0.0
    status: str = "ok"  # "ok" | "failed"
    note: str = ""
    model: ClusterModel | None = None

    def row(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "family": self.family,
            "k": self.k,
            "silhouette": round(self.silhouette, 4),
            "bic": None if self.bic is None else round(self.bic, 1),
            "davies_bouldin": round(self.davies_bouldin, 4),
            "calinski_harabasz": round(self.calinski_harabasz, 1),
            "fit_time_s": round(self.fit_time_s, 3),
            "status": self.status,
            "params": ", ".join(f"{k}={v}" for k, v in self.params.items()),
            "note": self.note,
        }


@dataclass
class ClusterResult:
    """What the search found: the chosen model, every trial, and how it chose."""

    model: ClusterModel
    trials: list[ClusterTrial]
    chosen: ClusterTrial
    reason: str  # why the winner won, in a sentence
    elapsed_s: float
    clusters: np.ndarray  # the training rows' clusters
    distance: np.ndarray  # and their distances to their centres
    profile: list[dict[str, Any]] = field(default_factory=list)

    @property
    def leaderboard(self) -> pd.DataFrame:
        rows = [t.row() for t in self.trials]
        board = pd.DataFrame(rows)
        chosen = board["trial"] == self.chosen.number
        board.insert(0, "chosen", np.where(chosen, "*", ""))
        return board.sort_values(["status", "silhouette"], ascending=[False, False])

    @property
    def silhouette(self) -> float:
        return self.chosen.silhouette


def check_features(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """The feature columns to cluster on; a constant one or none at all is a DataError."""
    names = [c.name for c in schema.features]
    if not names:
        raise DataError(
            "The schema has no feature column to cluster on: set role: feature on some "
            "columns of schema.yaml."
        )
    schema.check_frame(frame)
    for name in names:
        values = frame[name].dropna()
        if values.nunique() <= 1:
            what = (
                f"the value {canonical(values.iloc[0])!r} in every row"
                if len(values)
                else "no values"
            )
            raise DataError(
                f"Column '{name}' is constant ({what} of {len(frame)}): it cannot separate "
                f"clusters. Set its role to ignored in schema.yaml, or drop it (data.drop)."
            )
    return names


def silhouette_on(X: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of ``labels`` on rows ``X`` (-1 … 1; NaN with fewer than two clusters)."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(X):
        return float("nan")
    return float(silhouette_score(X, labels))


def _davies_bouldin(X: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import davies_bouldin_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(davies_bouldin_score(X, labels))


def _calinski_harabasz(X: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import calinski_harabasz_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(calinski_harabasz_score(X, labels))


def _candidates(cfg: ClusteringSpec, n: int, d: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Cheapest first, so that a budget covers the whole k range: k-means for every k,
    then HDBSCAN, then the mixtures (several times slower per k)."""
    ks = range(cfg.k_min, min(cfg.k_max, n - 1) + 1)
    if "kmeans" in cfg.algorithms:
        for k in ks:
            yield "kmeans", {"n_clusters": k}
    if "hdbscan" in cfg.algorithms:
        sizes = [cfg.min_cluster_size] if cfg.min_cluster_size else [
            max(5, int(round(share * min(n, HDBSCAN_ROWS)))) for share in HDBSCAN_SIZES
        ]  # fmt: skip
        for size in dict.fromkeys(sizes):
            yield "hdbscan", {"min_cluster_size": size}
    if "gmm" in cfg.algorithms:
        for k in ks:
            yield "gmm", {"n_components": k, "covariance_type": "full" if d <= 20 else "diag"}


def _fit(family: str, params: dict[str, Any], X: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
    """(fitted estimator, centres k × d)."""
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.mixture import GaussianMixture

    if family == "kmeans":
        km = KMeans(n_init=4, random_state=seed, **params).fit(X)
        return km, np.asarray(km.cluster_centers_)
    if family == "gmm":
        gm = GaussianMixture(random_state=seed, reg_covar=1e-4, n_init=1, **params).fit(X)
        return gm, np.asarray(gm.means_)
    rows = X
    if len(X) > HDBSCAN_ROWS:
        rows = X[np.random.default_rng(seed).choice(len(X), HDBSCAN_ROWS, replace=False)]
    hd = HDBSCAN(store_centers="centroid", copy=True, **params).fit(rows)
    centers = np.asarray(getattr(hd, "centroids_", np.zeros((0, X.shape[1]))))
    return hd, centers


def _trial(
    number: int,
    family: str,
    params: dict[str, Any],
    X: np.ndarray,
    sample: np.ndarray,
    make: Callable[[str, dict[str, Any], Any, np.ndarray], ClusterModel],
    seed: int,
) -> ClusterTrial:
    trial = ClusterTrial(number, family, params)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings: the scores say enough
            estimator, centers = _fit(family, params, X, seed)
    except (ValueError, np.linalg.LinAlgError) as exc:
        trial.status, trial.note = "failed", f"{type(exc).__name__}: {exc}"[:200]
        trial.fit_time_s = time.perf_counter() - t0
        return trial
    trial.fit_time_s = time.perf_counter() - t0
    trial.k = len(centers)
    if trial.k < 2:
        trial.status, trial.note = "failed", f"found {trial.k} cluster(s); at least 2 are needed"
        return trial
    model = make(family, params, estimator, centers)
    labels = model.assign(X[sample])[0]
    trial.silhouette = silhouette_on(X[sample], labels)
    trial.davies_bouldin = _davies_bouldin(X[sample], labels)
    trial.calinski_harabasz = _calinski_harabasz(X[sample], labels)
    if family == "gmm":
        trial.bic = float(estimator.bic(X))
    if family == "hdbscan":
        noise = float(np.mean(estimator.labels_ < 0))
        trial.note = f"{noise:.0%} of the fitted rows were noise; served by nearest centroid"
    trial.model = model
    return trial


def _consensus(pool: list[ClusterTrial]) -> list[float]:
    """Each candidate's mean rank by silhouette (high), Calinski-Harabasz (high) and
    Davies-Bouldin (low): 0 is best on all three."""
    scores = np.array([[t.silhouette, t.calinski_harabasz, -t.davies_bouldin] for t in pool])
    scores = np.nan_to_num(scores, nan=-np.inf)
    ranks = (-scores).argsort(axis=0).argsort(axis=0)
    return [float(r) for r in ranks.mean(axis=1)]


def _choose(trials: list[ClusterTrial], rule: str = "consensus") -> tuple[ClusterTrial, str]:
    ok = [t for t in trials if t.status == "ok" and t.silhouette == t.silhouette]
    if not ok:
        notes = "; ".join(f"{t.family} {t.params}: {t.note}" for t in trials[:3])
        raise DataError(
            f"No clustering could be fitted ({len(trials)} tried: {notes}). Widen "
            "clustering.k_min/k_max or clustering.algorithms, or check the data."
        )
    mixtures = [t for t in ok if t.family == "gmm" and t.bic is not None]
    best_bic = min(mixtures, key=lambda t: t.bic or 0.0) if mixtures else None
    pool = [t for t in ok if t.family != "gmm"] + ([best_bic] if best_bic else [])
    if rule == "silhouette" or len(pool) < 2:
        winner = max(pool, key=lambda t: t.silhouette)
        reason = f"highest silhouette {winner.silhouette:.4f} on a common sample"
    else:
        ranks = _consensus(pool)
        best = min(range(len(pool)), key=lambda i: (ranks[i], -pool[i].silhouette))
        winner = pool[best]
        reason = (
            f"best mean rank {ranks[best]:.1f} of {len(pool)} by silhouette "
            f"{winner.silhouette:.4f}, Calinski-Harabasz {winner.calinski_harabasz:.1f} and "
            f"Davies-Bouldin {winner.davies_bouldin:.4f} on a common sample"
        )
    if winner is best_bic:
        reason = f"BIC chose k={winner.k} among the mixtures; then {reason}"
    return winner, reason


def fit_clustering(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ClusteringSpec,
    *,
    budget_s: float = 60.0,
    on_trial: Callable[[ClusterTrial, float], None] | None = None,
) -> ClusterResult:
    """Search clusterings of ``frame``'s feature columns (see the module docstring)."""
    started = time.monotonic()
    if len(frame) < 2 * cfg.k_min + 1:
        raise DataError(
            f"{len(frame)} rows are too few to find {cfg.k_min} clusters: clustering needs at "
            f"least {2 * cfg.k_min + 1}. Add rows or lower clustering.k_min."
        )
    names = check_features(frame, schema)
    columns = [c for c in schema.features if c.name in names]
    encoder = TabularEncoder(columns, mode="onehot").fit(frame)
    scaler = make_scaler(cfg.scaling, encoder)
    X = encoder.transform(frame)
    if scaler is not None:
        X = scaler.fit_transform(X)
    X = np.asarray(X, dtype=float)
    rng = np.random.default_rng(cfg.seed)
    sample = np.sort(rng.choice(len(X), min(cfg.sample, len(X)), replace=False))

    def make(family: str, params: dict[str, Any], estimator: Any, centers: np.ndarray) -> Any:
        member = ClusterMember(family, dict(params), encoder, estimator, scaler)
        model = ClusterModel(schema, [member], centers, temperature=1.0)
        if family != "gmm":
            nearest = model.distances_of(X).min(axis=1)
            model.temperature = max(2.0 * float(np.mean(nearest**2)), 1e-12)
        return model

    trials: list[ClusterTrial] = []
    for number, (family, params) in enumerate(_candidates(cfg, len(X), X.shape[1])):
        if cfg.max_trials is not None and len(trials) >= cfg.max_trials:
            break
        if cfg.max_trials is None and trials and time.monotonic() - started > budget_s:
            break  # max_trials: deterministic, whatever the clock says (as train's search)
        trial = _trial(number, family, params, X, sample, make, cfg.seed)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial, time.monotonic() - started)
    chosen, reason = _choose(trials, cfg.choose)
    model = chosen.model
    assert model is not None  # an "ok" trial has its model
    clusters, distance, _ = model.assign(X)
    model.info = {
        "family": chosen.family,
        "params": chosen.params,
        "k": chosen.k,
        "silhouette": chosen.silhouette,
        "bic": chosen.bic,
        "scaling": cfg.scaling,
        "rows": len(frame),
        "reason": reason,
    }
    for t in trials:
        if t is not chosen:
            t.model = None  # only the winner is kept
    return ClusterResult(
        model,
        trials,
        chosen,
        reason,
        time.monotonic() - started,
        clusters,
        distance,
        profile_clusters(frame, names, clusters),
    )


def profile_clusters(
    frame: pd.DataFrame, features: list[str], clusters: np.ndarray, top: int = TOP_FEATURES
) -> list[dict[str, Any]]:
    """Per cluster: size, share and the features that set it apart most.

    A number's effect is its standardised mean difference (cluster mean − overall mean,
    over the overall standard deviation); a category's, for its most over-represented level,
    (share in the cluster − overall share) / sqrt(p (1 − p)) with p the overall share.
    """
    out = []
    n = len(frame)
    for c in sorted(np.unique(clusters).tolist()):
        inside = clusters == c
        effects: list[dict[str, Any]] = []
        for name in features:
            col = frame[name]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                values = col.astype(float)
                std = float(values.std()) or 1.0
                mean_in = float(values[inside].mean())
                effect = (mean_in - float(values.mean())) / std
                text = f"{name} mean {mean_in:.4g} (overall {float(values.mean()):.4g})"
            else:
                keys = col.astype(str)
                overall = keys.value_counts(normalize=True)
                share_in = keys[inside].value_counts(normalize=True)
                lift = (share_in - overall.reindex(share_in.index)).sort_values(ascending=False)
                if lift.empty:
                    continue
                level = lift.index[0]
                p = float(overall[level])
                effect = float(lift.iloc[0]) / max(np.sqrt(p * (1 - p)), 1e-9)
                text = f"{name} = {level}: {float(share_in[level]):.0%} (overall {p:.0%})"
            if effect == effect:
                effects.append({"feature": name, "effect": round(effect, 3), "text": text})
        effects.sort(key=lambda e: -abs(e["effect"]))
        size = int(inside.sum())
        out.append({"cluster": int(c), "size": size, "share": size / n, "features": effects[:top]})
    return out
