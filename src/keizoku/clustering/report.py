"""The HTML report of a clustering version: each cluster's size and profile, the search.

Built from the version's registered artifacts (``clusters.json``, ``leaderboard.csv``,
``training.json``), so it needs no data; ``keizoku report NAME`` writes it for a
``task: clustering`` version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["cluster_context", "write_cluster_report"]

BOARD_COLUMNS = ("trial", "family", "k", "silhouette", "bic", "davies_bouldin", "params", "note")


def cluster_context(ref: str) -> dict[str, Any]:
    """The plain context of the ``clustering`` page for version ``ref``."""
    from keizoku.registry.models import resolve, version_artifact

    name, version = resolve(ref)
    exact = f"{name}:{version}"
    clusters = json.loads(version_artifact(exact, "clusters.json").read_text())
    info = json.loads(version_artifact(exact, "training.json").read_text())
    board = pd.read_csv(version_artifact(exact, "leaderboard.csv"))
    profile = clusters["profile"]
    rows = [
        [c["cluster"], c["size"], {"mark": "", "text": f"{c['share']:.1%}"},
         "; ".join(f"{f['text']} (effect {f['effect']:+.2f})" for f in c["features"])]
        for c in profile
    ]  # fmt: skip
    cols = [c for c in BOARD_COLUMNS if c in board.columns]
    board = board.astype(object).where(board.notna(), None)
    distance = clusters["distance"]
    edges = distance.get("edges") or [0.0]
    return {
        "title": f"Clustering report: {exact}",
        "family": clusters["family"],
        "k": clusters["k"],
        "rows": info.get("rows", sum(c["size"] for c in profile)),
        "silhouette": float(info.get("silhouette", float("nan"))),
        "reason": clusters["reason"],
        "sizes": {
            "kind": "bar",
            "chart_id": "cluster-sizes",
            "title": "Rows per cluster",
            "labels": [f"cluster {c['cluster']}" for c in profile],
            "values": [c["size"] for c in profile],
            "xlabel": "training rows",
        },
        "profile": rows,
        "board_header": list(cols),
        "board_rows": [[r[c] for c in cols] for r in board.to_dict(orient="records")],
        "board_marks": [
            "chosen" if r.get("chosen") == "*" else "" for r in board.to_dict(orient="records")
        ],  # fmt: skip
        "distance_median": float(edges[len(edges) // 2]),
        "distance_p90": float(edges[min(len(edges) - 1, int(len(edges) * 0.9))]),
    }


def write_cluster_report(ref: str, out: str | Path) -> Path:
    """Write the report of clustering version ``ref`` to ``out`` (atomically)."""
    from keizoku.reporting import write

    return write("clustering", cluster_context(ref), out)
