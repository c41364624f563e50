"""Named presets: what ``--preset`` means, kept stable so a saved spec means the same."""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    # fast: 3 folds, the three families that are usually best per second; small
    # ensembles; candidates slower than 3 ms per row are not chosen.
    "fast": {
        "folds": 3,
        "families": ["lightgbm", "linear", "hist_gradient_boosting"],
        "ensemble_candidates": 5,
        "max_latency_ms": 3.0,
    },
    # balanced (default): 5 folds, every family that suits the data size; the chosen
    # model (ensemble included) must score one row within 10 ms.
    "balanced": {
        "folds": 5,
        "families": None,
        "ensemble_candidates": 10,
        "max_latency_ms": 10.0,
    },
    # best: 5 folds, every family, a wider ensemble pool and no latency limit.
    "best": {"folds": 5, "families": None, "ensemble_candidates": 20, "max_latency_ms": None},
}
