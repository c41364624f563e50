"""The benchmark's statistics (bench/stats.py): paired bootstrap intervals, verdicts, ranks."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from kzsupport import REPO

sys.path.insert(0, str(REPO / "bench"))
import stats  # noqa: E402

auc_error, rmse_error, paired_bootstrap = stats.auc_error, stats.rmse_error, stats.paired_bootstrap
verdict, mean_ranks, normalised_score = stats.verdict, stats.mean_ranks, stats.normalised_score


def _regression(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    good = y + rng.normal(scale=0.3, size=n)
    bad = y + rng.normal(scale=1.0, size=n)
    return y, good, bad


def test_a_clearly_better_model_gets_an_interval_below_zero() -> None:
    y, good, bad = _regression()
    ci = paired_bootstrap(rmse_error(y, good), rmse_error(y, bad), len(y), n_boot=300)
    full = np.sqrt(np.mean((y - good) ** 2)) - np.sqrt(np.mean((y - bad) ** 2))
    assert ci["delta"] == pytest.approx(full)
    assert ci["low"] <= ci["delta"] <= ci["high"] < 0
    assert verdict(ci) == "better"
    flipped = paired_bootstrap(rmse_error(y, bad), rmse_error(y, good), len(y), n_boot=300)
    assert verdict(flipped) == "worse"


def test_the_same_predictions_tie_and_pairing_narrows_the_interval() -> None:
    y, good, _ = _regression()
    same = paired_bootstrap(rmse_error(y, good), rmse_error(y, good), len(y), n_boot=200)
    assert same["low"] == same["high"] == same["delta"] == 0.0
    assert verdict(same) == "tie"
    # Two near-identical models: the paired interval is much narrower than either error's own
    # bootstrap spread, so a small, consistent gain can be told apart from noise.
    slightly = good * 0.98 + y * 0.02
    ci = paired_bootstrap(rmse_error(y, slightly), rmse_error(y, good), len(y), n_boot=300)
    rng = np.random.default_rng(1)
    alone = [rmse_error(y, good)(rng.integers(0, len(y), len(y))) for _ in range(300)]
    assert ci["high"] - ci["low"] < (np.percentile(alone, 97.5) - np.percentile(alone, 2.5)) / 5
    assert verdict(ci) == "better"


def test_the_interval_is_seeded_and_covers_the_level_asked() -> None:
    y, good, bad = _regression(seed=3, n=150)
    a, b = rmse_error(y, good), rmse_error(y, bad)
    assert paired_bootstrap(a, b, len(y), seed=7) == paired_bootstrap(a, b, len(y), seed=7)
    wide = paired_bootstrap(a, b, len(y), confidence=0.99, n_boot=400)
    narrow = paired_bootstrap(a, b, len(y), confidence=0.5, n_boot=400)
    assert wide["low"] < narrow["low"] < narrow["high"] < wide["high"]


def test_auc_error_matches_scikit_learn_and_skips_one_class_resamples() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.array(["no"] * 95 + ["yes"] * 5)
    proba = rng.random((100, 1))
    proba = np.hstack([1 - proba, proba])
    err = auc_error(y, proba, ["no", "yes"])
    assert err(np.arange(100)) == pytest.approx(1 - roc_auc_score(y == "yes", proba[:, 1]))
    assert np.isnan(err(np.arange(90)))  # only "no" rows: no AUC
    tied = np.round(proba, 1)  # many equal scores: ties share their mean rank
    expected = 1 - roc_auc_score(y == "yes", tied[:, 1])
    assert auc_error(y, tied, ["no", "yes"])(np.arange(100)) == pytest.approx(expected)
    ci = paired_bootstrap(err, err, 100, n_boot=100)
    assert 0 < ci["n_boot"] <= 100


def test_multiclass_auc_error_is_the_macro_one_vs_rest() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.choice(["a", "b", "c"], size=200)
    proba = rng.dirichlet([1, 1, 1], size=200)
    err = auc_error(y, proba, ["a", "b", "c"])
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=["a", "b", "c"])
    assert err(np.arange(200)) == pytest.approx(1 - expected)


def test_mean_ranks_share_ties_and_put_failures_last() -> None:
    errors: dict[str, dict[str, float | None]] = {
        "one": {"keizoku": 0.1, "flaml": 0.2, "lightgbm": 0.3},
        "two": {"keizoku": 0.2, "flaml": 0.2, "lightgbm": None},  # lightgbm failed
        "three": {"keizoku": 0.5, "flaml": 0.1},  # lightgbm not run here
    }
    ranks = mean_ranks(errors, ["keizoku", "flaml", "lightgbm"])
    assert ranks["keizoku"] == pytest.approx((1 + 1.5 + 2) / 3)
    assert ranks["flaml"] == pytest.approx((2 + 1.5 + 1) / 3)
    assert ranks["lightgbm"] == pytest.approx((3 + 3) / 2)
    assert mean_ranks({}, ["keizoku"]) == {"keizoku": None}


def test_normalised_score_is_relative_to_the_worse_of_the_two() -> None:
    assert normalised_score(0.2, 0.1) == pytest.approx(0.5)
    assert normalised_score(0.1, 0.2) == pytest.approx(-0.5)
    assert normalised_score(0.0, 0.0) == 0.0
    assert -1 <= normalised_score(1e-9, 5.0) <= 1
