"""Named presets: what ``--preset`` means, kept stable so a saved spec means the same.

Keys: ``folds``; ``families`` (None: every installed family that suits the data size);
``ensemble_candidates`` (the pool the greedy ensemble picks from); ``max_latency_ms`` (a
preference for the served model's single-row latency, see ``search._Search``);
``bag`` (serve the fold models of the chosen configurations, averaged, instead of one
refit on all rows, when that fits the latency preference); ``portfolio`` (try each
family's zero-shot configurations before the Bayesian search); ``calibrate`` (temperature
scaling of classifier probabilities when it lowers out-of-fold log loss). The choices are
measured in docs/decisions/0012-automl-methods.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "DEFAULT_PRESET", "preset"]

DEFAULT_PRESET = "good"

PRESETS: dict[str, dict[str, Any]] = {
    # fast: 3 folds, the three families that are usually best per second; small
    # ensembles; candidates slower than 3 ms per row are not chosen; one refit.
    "fast": {
        "folds": 3,
        "families": ["lightgbm", "linear", "hist_gradient_boosting"],
        "ensemble_candidates": 5,
        "max_latency_ms": 3.0,
        "bag": False,
        "portfolio": False,
        "calibrate": True,
    },
    # good (default): 5 folds, every family that suits the data size; the served model
    # (ensemble and bag included) should score one row within 1 ms.
    "good": {
        "folds": 5,
        "families": ["lightgbm", "xgboost", "hist_gradient_boosting", "linear", "knn"],
        "ensemble_candidates": 10,
        "max_latency_ms": 1.0,
        "bag": True,
        "portfolio": True,
        "calibrate": True,
    },
    # best: 5 folds, every family (CatBoost too when installed), a wider ensemble pool,
    # bagged fold models and no latency limit.
    "best": {
        "folds": 5,
        "families": None,
        "ensemble_candidates": 20,
        "max_latency_ms": None,
        "bag": True,
        "portfolio": True,
        "calibrate": True,
    },
}

ALIASES = {"balanced": "good"}  # the default's name before 0012, still in saved specs


def preset(name: str) -> dict[str, Any]:
    """The preset called ``name`` (an alias such as ``balanced`` resolves to its preset)."""
    return PRESETS[ALIASES.get(name, name)]
