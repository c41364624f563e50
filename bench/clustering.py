"""Clustering: keizoku's search against plain k-means told the true number of groups.

    python bench/clustering.py [--out bench/results/<ts>-clustering.json] [--quick]
        [--budget 60] [--k-max 12] [--max-trials N] [--scaling standard] [--only iris,...]

For every set with known groups (the groups are removed before fitting, then used only to
score): the adjusted Rand index (ARI) of

* **keizoku**: ``keizoku.clustering.train.fit_clustering`` with the default ``clustering:``
  section except ``k_max`` (``--k-max``, default 12 so that sets with 10-11 groups are
  reachable), under ``--budget`` seconds or ``--max-trials``: k-means, Gaussian mixtures
  and HDBSCAN, chosen by the consensus of silhouette, Calinski-Harabasz and Davies-Bouldin
  (BIC among the mixtures), without the true count; beside it, the pick the silhouette
  alone makes among the same candidates (the s5 rule);
* **k-means (true k)**: scikit-learn ``KMeans(n_clusters=<true count>, n_init=10)`` on the
  columns z-scored (categories one-hot, missing numbers median-imputed): the usual
  baseline, which is *told* the answer keizoku has to find.

Sets: scikit-learn's iris and wine (bundled), ``wholesale.csv`` (Channel, then Region as
the groups), ``penguins.csv`` (species), and classification sets of the PMLB pack (target
removed). Shared sets that are absent are reported as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "datasets"
if not SHARED.exists():
    SHARED = Path("/work/shared/datasets")

PMLB = ("breast_cancer_wisconsin", "balance_scale", "vowel", "yeast", "waveform_40",
        "page_blocks", "banana", "satimage", "texture", "pendigits", "cmc", "led24",
        "twonorm", "analcatdata_authorship")  # fmt: skip
QUICK_PMLB = ("breast_cancer_wisconsin", "balance_scale", "waveform_40")


def _sets(quick: bool) -> list[tuple[str, pd.DataFrame | None, np.ndarray | None, str]]:
    """(name, features, groups, note); features None when the file is absent."""
    from sklearn.datasets import load_iris, load_wine

    out: list[tuple[str, pd.DataFrame | None, np.ndarray | None, str]] = []
    for name, loader in (("iris", load_iris), ("wine", load_wine)):
        data = loader(as_frame=True)
        out.append((name, data.frame.drop(columns="target"), data.target.to_numpy(), "bundled"))
    wholesale = SHARED / "tabular" / "wholesale.csv"
    if wholesale.exists():
        frame = pd.read_csv(wholesale)
        features = frame.drop(columns=["Channel", "Region"])
        for label in ("Channel", "Region"):
            out.append((f"wholesale ({label})", features, frame[label].to_numpy(), "shared"))
    else:
        out.append(("wholesale", None, None, "absent"))
    penguins = SHARED / "tabular" / "penguins.csv"
    if penguins.exists():
        frame = pd.read_csv(penguins)
        out.append(("penguins (species)", frame.drop(columns="species"),
                    frame["species"].to_numpy(), "shared"))  # fmt: skip
    else:
        out.append(("penguins", None, None, "absent"))
    for name in QUICK_PMLB if quick else PMLB:
        path = SHARED / "pmlb" / f"{name}.tsv.gz"
        if not path.exists():
            out.append((name, None, None, "absent"))
            continue
        frame = pd.read_csv(path, sep="\t")
        out.append((name, frame.drop(columns="target"), frame["target"].to_numpy(), "pmlb"))
    return out


def _keizoku(
    frame: pd.DataFrame, budget: float, k_max: int, max_trials: int | None, scaling: str
) -> dict[str, Any]:
    """keizoku's search, chosen by consensus, and the pick silhouette alone would have made
    among the same candidates (refitted alone: the same seed gives the same fit)."""
    import warnings

    from keizoku.clustering.spec import ClusteringSpec
    from keizoku.clustering.train import _choose, fit_clustering
    from keizoku.data.schema import infer_schema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, None, task="clustering")
    t0 = time.perf_counter()
    cfg = ClusteringSpec(k_max=k_max, max_trials=max_trials, scaling=scaling)  # type: ignore[arg-type]
    result = fit_clustering(frame, schema, cfg, budget_s=budget)
    seconds = time.perf_counter() - t0
    alone, _ = _choose(result.trials, "silhouette")
    labels = result.clusters
    if alone.number != result.chosen.number:
        one: dict[str, Any] = {"algorithms": [alone.family], "max_trials": 1, "scaling": scaling}
        if alone.family == "hdbscan":
            one["min_cluster_size"] = alone.params["min_cluster_size"]
        else:
            one.update(k_min=alone.k, k_max=alone.k)
        labels = fit_clustering(frame, schema, ClusteringSpec(**one), budget_s=budget).clusters
    return {
        "labels": result.clusters,
        "k": result.model.k,
        "family": result.chosen.family,
        "silhouette_labels": labels,
        "silhouette_k": alone.k,
        "silhouette_family": alone.family,
        "trials": len(result.trials),
        "seconds": seconds,
    }


def _kmeans_true_k(frame: pd.DataFrame, k: int) -> dict[str, Any]:
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    X = pd.get_dummies(frame, dummy_na=False).astype(float)
    X = X.fillna(X.median())
    t0 = time.perf_counter()
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(
        StandardScaler().fit_transform(X)
    )
    return {"labels": labels, "seconds": time.perf_counter() - t0}


def main() -> None:
    from sklearn.metrics import adjusted_rand_score

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--k-max", type=int, default=12)
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--scaling", default="standard")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    wanted = [w for w in args.only.split(",") if w]
    rows = []
    for name, frame, groups, note in _sets(args.quick):
        if wanted and not any(w in name for w in wanted):
            continue
        if frame is None or groups is None:
            rows.append({"set": name, "status": note})
            print(f"{name}: {note}", flush=True)
            continue
        true_k = len(pd.unique(groups))
        ours = _keizoku(frame, args.budget, args.k_max, args.max_trials, args.scaling)
        base = _kmeans_true_k(frame, true_k)
        alone = ours["silhouette_labels"]
        row = {
            "set": name, "rows": len(frame), "true_k": true_k,
            "keizoku_ari": round(float(adjusted_rand_score(groups, ours["labels"])), 4),
            "keizoku_k": ours["k"], "keizoku_family": ours["family"],
            "keizoku_trials": ours["trials"], "keizoku_s": round(ours["seconds"], 1),
            "silhouette_ari": round(float(adjusted_rand_score(groups, alone)), 4),
            "silhouette_k": ours["silhouette_k"], "silhouette_family": ours["silhouette_family"],
            "kmeans_true_k_ari": round(float(adjusted_rand_score(groups, base["labels"])), 4),
            "kmeans_s": round(base["seconds"], 2), "status": "ok",
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = (
        args.out or ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%S')}-clustering.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "budget_s": args.budget,
                "k_max": args.k_max,
                "max_trials": args.max_trials,
                "scaling": args.scaling,
                "rows": rows,
            },
            indent=1,
        )  # fmt: skip
    )
    print(_markdown(rows))


def _markdown(rows: list[dict[str, Any]]) -> str:
    header = ("| set | rows | true k | keizoku ARI, consensus: k (family) | silhouette alone: "
              "ARI, k (family) | k-means ARI, true k | s |")  # fmt: skip
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['set']} | {r['status']} | | | | | |")
            continue
        lines.append(
            f"| {r['set']} | {r['rows']} | {r['true_k']} | {r['keizoku_ari']:.3f}: "
            f"{r['keizoku_k']} ({r['keizoku_family']}) | {r['silhouette_ari']:.3f}, "
            f"{r['silhouette_k']} ({r['silhouette_family']}) | {r['kmeans_true_k_ari']:.3f} | "
            f"{r['keizoku_s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
