"""Paired bootstrap and the sequential A/B test on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from keizoku.lifecycle.abtest import ab_decision
from keizoku.lifecycle.gates import GateConfig, metric_gate, paired_bootstrap
from keizoku.training.metrics import get_metric


def _binary(n: int, seed: int, noise_b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.clip(y * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
    b = np.clip(y * noise_b + rng.uniform(0, 1 - noise_b, n), 0, 1)
    return y, np.column_stack([1 - a, a]), np.column_stack([1 - b, b])


def test_paired_bootstrap_detects_a_better_model() -> None:
    y, a, b = _binary(1500, 0, 0.6)
    stats = paired_bootstrap(get_metric("roc_auc", "binary"), y, a, b, n_boot=300)
    assert stats["delta"] > 0.05 and stats["low"] > 0 and stats["p_value"] < 0.01
    assert metric_gate(stats, "roc_auc", GateConfig()).passed


def test_paired_bootstrap_of_a_model_against_itself_is_centred_on_zero() -> None:
    y, a, _ = _binary(1000, 1, 0.6)
    stats = paired_bootstrap(get_metric("roc_auc", "binary"), y, a, a.copy(), n_boot=200)
    assert stats["delta"] == 0 and stats["low"] == 0 and stats["high"] == 0
    assert not metric_gate(stats, "roc_auc", GateConfig()).passed


def test_paired_errors_for_regression() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(0, 1, 2000)
    a, b = y + rng.normal(0, 1.0, 2000), y + rng.normal(0, 0.5, 2000)
    stats = paired_bootstrap(get_metric("rmse", "regression"), y, a, b, n_boot=500)
    assert stats["delta"] == pytest.approx(1.0 - 0.5, abs=0.08)
    assert stats["low"] > 0.3


def test_sequential_test_keeps_type_one_error_under_repeated_looks() -> None:
    """Simulated nulls, 5 looks each: the always-valid test rejects < alpha; naive does not."""
    rng = np.random.default_rng(3)
    runs, alpha = 100, 0.05
    seq = naive = 0
    for _ in range(runs):
        xa = (rng.uniform(size=2000) < 0.7).astype(float)
        xb = (rng.uniform(size=2000) < 0.7).astype(float)
        looks = [ab_decision(xa[:k], xb[:k], metric="accuracy", rate=True, alpha=alpha)
                 for k in range(400, 2001, 400)]  # fmt: skip
        seq += any(r.p_value < alpha for r in looks)
        naive += any(r.fixed_p_value < alpha for r in looks)
    assert seq / runs <= alpha
    assert naive / runs > alpha  # peeking at a fixed-horizon test inflates the error


def test_sequential_test_decides_on_a_real_effect() -> None:
    rng = np.random.default_rng(4)
    xa = (rng.uniform(size=3000) < 0.60).astype(float)
    xb = (rng.uniform(size=3000) < 0.70).astype(float)
    r = ab_decision(xa, xb, metric="accuracy", rate=True)
    assert r.decision == "promote" and r.ci_low > 0 and r.ci_low < 0.1 < r.ci_high
    worse = ab_decision(xb, xa, metric="accuracy", rate=True)
    assert worse.decision == "keep"


def test_undecided_test_says_how_many_more_samples() -> None:
    rng = np.random.default_rng(5)
    xa = (rng.uniform(size=300) < 0.70).astype(float)
    xb = (rng.uniform(size=300) < 0.71).astype(float)
    r = ab_decision(xa, xb, metric="accuracy", rate=True, mde=0.02)
    assert r.decision == "continue" and r.needed_per_arm > 1000


def test_welch_for_means_lower_is_better() -> None:
    rng = np.random.default_rng(6)
    xa, xb = np.abs(rng.normal(0, 1.0, 2000)), np.abs(rng.normal(0, 0.7, 2000))
    r = ab_decision(xa, xb, metric="abs_error", rate=False, higher_is_better=False, mde=0.05)
    assert r.fixed_test == "Welch t" and r.effect < 0 and r.decision == "promote"
