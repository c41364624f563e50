"""Gates for a new clustering version (``task: clustering``), against the champion.

Both versions assign the same hold-out rows (rows the candidate was not fitted on). There
is no label, so the metric gate of supervised models does not apply; instead:

* **silhouette**: the candidate's silhouette minus the champion's, both computed in the
  champion's feature space (the one served now), must be at least ``clustering.min_gain``
  (default −0.05: a new version may cost a little separation, not much);
* **baseline**: the candidate's silhouette must be above 0 (on average a row is nearer its
  own cluster than the next one): a clustering of noise fails it;
* **stability**: the adjusted Rand index between the two versions' assignments must be at
  least ``clustering.min_ari`` (default 0.5): a retrain must not silently redraw the
  segments downstream users rely on; set it to −1 to allow any change;
* **latency**: as for every model (``keizoku.lifecycle.gates.latency_gate``).

See docs/decisions/0018-clustering.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keizoku.clustering.model import ClusterModel
from keizoku.clustering.spec import ClusteringSpec
from keizoku.clustering.train import silhouette_on
from keizoku.errors import IntegrityError
from keizoku.lifecycle.gates import GateCheck, GateConfig, GateReport, latency_gate, latency_ms

__all__ = ["MIN_HOLDOUT", "cluster_gates"]

MIN_HOLDOUT = 10  # fewest hold-out rows that make the comparison


def _cluster_model(model: Any, ref: str) -> ClusterModel:
    if not isinstance(model, ClusterModel):
        raise IntegrityError(
            f"Version {ref} is not a clustering model (task {model.task}); a clustering "
            "project's versions must all be clusterings. Train it again with `keizoku train`."
        )
    return model


def cluster_gates(
    name: str,
    candidate: int,
    champion: int,
    holdout: pd.DataFrame,
    target: str,
    cfg: GateConfig,
    spec: Any = None,
) -> tuple[GateReport, dict[str, Any]]:
    """Gate ``name:candidate`` against ``name:champion`` on ``holdout``: (report, statistics).

    Same signature as :func:`keizoku.lifecycle.gates.run_gates`; ``target`` is unused.
    """
    from sklearn.metrics import adjusted_rand_score

    from keizoku.registry.models import load_model

    section: ClusteringSpec = getattr(spec, "clustering", None) or ClusteringSpec()
    champ = _cluster_model(load_model(f"{name}:{champion}"), f"{name}:{champion}")
    cand = _cluster_model(load_model(f"{name}:{candidate}"), f"{name}:{candidate}")
    report = GateReport()
    features = [c.name for c in champ.schema.features]
    rows = holdout[[c for c in features if c in holdout.columns]]
    info: dict[str, Any] = {"metric": "silhouette", "rows": len(rows)}
    if len(rows) < MIN_HOLDOUT:
        why = f"only {len(rows)} hold-out rows (at least {MIN_HOLDOUT} are needed)"
        report.checks.append(GateCheck("silhouette", False, None, section.min_gain, why))
        return report, info
    space = champ.embed(rows)  # both assignments judged in the served space
    a = np.asarray(champ.predict(rows))
    b = np.asarray(cand.predict(rows))
    s_champ, s_cand = silhouette_on(space, a), silhouette_on(space, b)
    gain = s_cand - s_champ if s_cand == s_cand and s_champ == s_champ else float("nan")
    ari = float(adjusted_rand_score(a, b))
    info.update(silhouette_champion=s_champ, silhouette_candidate=s_cand, ari=ari,
                k_champion=champ.k, k_candidate=cand.k)  # fmt: skip
    report.checks += [
        _silhouette_check(gain, s_champ, s_cand, len(rows), section.min_gain),
        _baseline_check(s_cand),
        _stability_check(ari, champ.k, cand.k, section.min_ari),
    ]
    lat = latency_ms(champ, cand, rows.head(50).to_dict(orient="records"))
    report.checks.append(latency_gate(*lat, cfg))
    info["latency_ms"] = lat
    return report, info


def _silhouette_check(
    gain: float, s_champ: float, s_cand: float, n: int, min_gain: float
) -> GateCheck:
    passed = bool(gain >= min_gain)  # NaN (one cluster found): fails
    detail = (
        f"silhouette {s_cand:.4f} vs champion {s_champ:.4f} on {n} hold-out rows "
        f"(change {gain:+.4f}, limit {min_gain:+g})"
    )
    if not passed:
        detail += ": the clusters are less separated (spec key clustering.min_gain)"
    return GateCheck("silhouette", passed, gain, min_gain, detail)


def _baseline_check(s_cand: float) -> GateCheck:
    passed = bool(s_cand > 0)
    detail = f"candidate silhouette {s_cand:.4f} above 0"
    if not passed:
        detail = (
            f"candidate silhouette {s_cand:.4f} is not above 0: its rows are no nearer their "
            "own cluster than the next one. Check the features, then train again."
        )
    return GateCheck("baseline", passed, s_cand, 0.0, detail)


def _stability_check(ari: float, k_champ: int, k_cand: int, min_ari: float) -> GateCheck:
    passed = bool(ari >= min_ari)
    detail = (
        f"assignments agree with the champion's: adjusted Rand index {ari:.3f} "
        f"(k {k_cand} vs {k_champ}; limit {min_ari:g})"
    )
    if not passed:
        detail += (
            ": the new version redraws the clusters. Promote it by hand if that is wanted "
            "(`keizoku promote`), or lower clustering.min_ari"
        )
    return GateCheck("stability", passed, ari, min_ari, detail)
