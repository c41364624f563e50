"""``keizoku train`` for a ``task: clustering`` project: the search, the profile, the gates."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from keizoku.cli import _io

__all__ = ["train_clustering_command"]

CLUSTER_JSON_SCHEMA = "keizoku.train.clustering/1"


def _number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train_clustering_command(
    config: Path, overrides: dict[str, Any], *, started: float, as_json: bool
) -> None:
    """Train, register and gate a clustering; print the leaderboard and each cluster's profile."""
    from keizoku.clustering.lifecycle import train_clustering

    def trial(t: Any, elapsed: float) -> None:
        if not as_json:
            score = f"silhouette {t.silhouette:.4f}" if t.status == "ok" else t.note
            _io.err.print(f"[{elapsed:5.1f}s] trial {t.number} {t.family} k={t.k}: {score}",
                          highlight=False)  # fmt: skip

    outcome, admission = train_clustering(
        config, overrides=overrides, on_trial=trial, started=started
    )
    res = outcome.result
    if as_json:
        board = [{k: _number(v) for k, v in row.items()}
                 for row in res.leaderboard.to_dict(orient="records")]  # fmt: skip
        gates = admission.gates.to_dict() if admission.gates else None
        _io.emit_json({
            "schema": CLUSTER_JSON_SCHEMA, "model": outcome.name, "version": outcome.version,
            "state": admission.state, "task": "clustering", "family": res.chosen.family,
            "k": res.model.k, "silhouette": _number(res.silhouette), "reason": res.reason,
            "leaderboard": board, "profile": res.profile, "gates": gates,
            "phases": outcome.phases,
        })  # fmt: skip
        _print_admission(outcome.name, outcome.version, admission, quiet=True)
        return
    table = _io.table(
        "Clusterings tried", ["", "trial", "family", "k", "silhouette", "bic", "params"],
        right=("k", "silhouette", "bic"),
    )  # fmt: skip
    for row in res.leaderboard.to_dict(orient="records"):
        bic = row["bic"]
        table.add_row(
            row["chosen"], str(row["trial"]), row["family"], str(row["k"]),
            f"{row['silhouette']:.4f}" if row["status"] == "ok" else row["note"][:40],
            "" if bic is None or bic != bic else f"{bic:.1f}", row["params"],
        )  # fmt: skip
    _io.console.print(table)
    _io.console.print(_profile_table(res.profile))
    _io.console.print(
        f"Best: [bold]{res.chosen.family}[/] with {res.model.k} clusters · {res.reason}"
    )
    _print_admission(outcome.name, outcome.version, admission)


def _profile_table(profile: list[dict[str, Any]]) -> Any:
    t = _io.table("Clusters", ["cluster", "size", "share", "what sets it apart"],
                  right=("size", "share"))  # fmt: skip
    for c in profile:
        apart = "; ".join(f["text"] for f in c["features"])
        t.add_row(str(c["cluster"]), str(c["size"]), f"{c['share']:.0%}", apart)
    return t


def _print_admission(name: str, version: int, admission: Any, quiet: bool = False) -> None:
    from keizoku.cli import _print_admission as show

    show(name, version, admission, quiet=quiet)
