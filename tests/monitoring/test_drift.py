"""Drift: known answers on planted shifts and on noise; PSI/JS/KS numbers."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from keizoku.monitoring.drift import (
    DriftConfig,
    NumericCounts,
    compare_categorical,
    compare_numeric,
    js_distance,
    ks_from_cdf,
    psi,
    tail_sums,
)
from keizoku.monitoring.monitor import drift_of_source
from keizoku.monitoring.reference import Reference, categorical_ref, numeric_ref


def test_psi_known_values() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    # (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected)


def test_js_distance_known_values() -> None:
    assert js_distance(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    # JS divergence of (0.5,0.5) vs (1,0) in bits: 1 - 0.5*H(0.75,0.25)... computed directly
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    m = (p + q) / 2
    jsd = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * q[0] * np.log2(q[0] / m[0])
    assert js_distance(p, q) == pytest.approx(math.sqrt(jsd))


def test_ks_matches_scipy_on_continuous_data() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.1, 1, 4000)
    edges = np.sort(np.concatenate([a, b]))
    d, p = ks_from_cdf(
        np.searchsorted(np.sort(a), edges, side="right") / len(a),
        np.searchsorted(np.sort(b), edges, side="right") / len(b),
        len(a),
        len(b),
    )
    ref = stats.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=0.2)


def _counts(ref_values: np.ndarray, cur: np.ndarray) -> tuple[object, NumericCounts]:
    ref = numeric_ref(ref_values)
    ok = cur[~np.isnan(cur)]
    le = np.array([(ok <= e).sum() for e in ref.edges], dtype=float)
    below, above = tail_sums(cur, ref.edges)
    return ref, NumericCounts(len(cur), int(np.isnan(cur).sum()), le, below, above)


def test_numeric_shift_is_flagged_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, 20_000)
    ref, same = _counts(train, rng.normal(0, 1, 5000))
    noise = compare_numeric("x", ref, same, DriftConfig())  # type: ignore[arg-type]
    assert not noise.drifted and noise.psi < 0.05 and noise.p_value > 0.01
    _, shifted = _counts(train, rng.normal(0.8, 1, 5000))
    drift = compare_numeric("x", ref, shifted, DriftConfig())  # type: ignore[arg-type]
    assert drift.drifted and drift.psi > 0.5 and drift.distance == pytest.approx(0.8, abs=0.1)


def test_null_rate_change_is_drift() -> None:
    rng = np.random.default_rng(2)
    ref, cur = _counts(rng.normal(0, 1, 10_000), np.where(
        rng.uniform(size=4000) < 0.4, np.nan, rng.normal(0, 1, 4000)))  # fmt: skip
    out = compare_numeric("x", ref, cur, DriftConfig())  # type: ignore[arg-type]
    assert out.null_rate_cur == pytest.approx(0.4, abs=0.03) and out.psi > 0.2
    # the values that are there did not move: the null rate alone makes it drift, and says so
    assert out.drifted and out.distance < 0.1 and out.reason.startswith("null rate 0.0%→")
    assert out.effect == pytest.approx(out.null_effect) and out.threshold == 0.1


def test_categorical_shift_and_unseen_levels() -> None:
    rng = np.random.default_rng(3)
    ref = categorical_ref(rng.choice(["a", "b", "c"], 10_000, p=[0.5, 0.3, 0.2]))
    same = pd.Series(rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])).value_counts()
    out = compare_categorical("c", ref, dict(same), DriftConfig())
    assert not out.drifted and out.distance < 0.05
    moved = pd.Series(rng.choice(["a", "b", "zzz"], 3000, p=[0.2, 0.3, 0.5])).value_counts()
    levels = {("__other__" if k == "zzz" else k): int(v) for k, v in moved.items()}
    out = compare_categorical("c", ref, levels, DriftConfig())
    assert out.drifted and out.test == "chi2" and out.distance > 0.3


def test_sql_counts_equal_numpy_counts() -> None:
    """The DuckDB histogram path gives the same verdicts as counting in numpy."""
    rng = np.random.default_rng(4)
    train = pd.DataFrame({"x": rng.normal(0, 1, 5000), "c": rng.choice(["u", "v"], 5000)})
    cur = pd.DataFrame({"f__x": rng.normal(1, 1, 2000), "f__c": rng.choice(["u", "v"], 2000)})
    ref = Reference(
        created=0, n_rows=5000, task="binary", target="y", metric="roc_auc",
        greater_is_better=True, cv_score=0.9,
        features={"x": numeric_ref(train["x"]), "c": categorical_ref(train["c"])},
    )  # fmt: skip
    con = duckdb.connect()
    con.register("cur", cur)
    n, feats, _, _ = drift_of_source(
        con, "SELECT 0.0 AS bucket, * FROM cur", ref, {"x": "f__x", "c": "f__c"}, None,
        DriftConfig(),
    )  # fmt: skip
    assert n == 2000
    by = {f.feature: f for f in feats}
    _, counts = _counts(train["x"].to_numpy(), cur["f__x"].to_numpy())
    direct = compare_numeric("x", ref.features["x"], counts, DriftConfig())
    assert by["x"].psi == pytest.approx(direct.psi) and by["x"].drifted
    assert by["x"].distance == pytest.approx(direct.distance)  # tails summed in SQL too
    assert not by["c"].drifted
