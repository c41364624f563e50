"""Conformance of every drift measure: quiet on noise, loud on a planted change, and no error
on NaN, empty or constant columns.

Each measure is run the way ``keizoku monitor`` runs it (the reference sketch saved at
training against counts of the current window) and judged by its own alarm: KS and chi-squared
by p < 0.01, PSI by ≥ 0.2, Jensen-Shannon and Wasserstein/std by ≥ 0.1, the domain
classifier by its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from keizoku.monitoring.drift import (
    DriftConfig,
    FeatureDrift,
    NumericCounts,
    compare_categorical,
    compare_numeric,
    tail_sums,
)
from keizoku.monitoring.multivariate import LEVELS, _categorical_block, domain_classifier
from keizoku.monitoring.reference import categorical_ref, numeric_ref

N = 4000


def numeric(ref_values: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    ref = numeric_ref(ref_values)
    ok = cur[~np.isnan(cur)]
    le = np.searchsorted(np.sort(ok), ref.edges, side="right").astype(float)
    below, above = tail_sums(cur, ref.edges)
    counts = NumericCounts(len(cur), int(np.isnan(cur).sum()), le, below, above)
    return compare_numeric("x", ref, counts, DriftConfig())


def categorical(ref_values: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    ref = categorical_ref(ref_values)
    counts: dict[str | None, int] = {}
    for v in cur:
        key = None if v is None else (v if v in ref.frequencies else "__other__")
        counts[key] = counts.get(key, 0) + 1
    return compare_categorical("c", ref, counts, DriftConfig())


def _num_null(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0, 1, N), rng.normal(0, 1, N)


def _num_planted(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0, 1, N), rng.normal(0.5, 1, N)


def _cat_null(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice(list("abc"), N, p=[0.5, 0.3, 0.2]), rng.choice(
        list("abc"), N, p=[0.5, 0.3, 0.2]
    )


def _cat_planted(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice(list("abc"), N, p=[0.5, 0.3, 0.2]), rng.choice(
        list("abc"), N, p=[0.2, 0.3, 0.5]
    )


# measure -> (compare, alarm on its result, null data, planted data)
Data = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
Measure = tuple[Callable[..., FeatureDrift], Callable[[FeatureDrift], bool], Data, Data]
MEASURES: dict[str, Measure] = {  # fmt: skip
    "ks": (numeric, lambda f: f.p_value < 0.01, _num_null, _num_planted),
    "wasserstein": (numeric, lambda f: f.distance >= 0.1, _num_null, _num_planted),
    "psi (numbers)": (numeric, lambda f: f.psi >= 0.2, _num_null, _num_planted),
    "chi2": (categorical, lambda f: f.p_value < 0.01, _cat_null, _cat_planted),
    "jensen-shannon": (categorical, lambda f: f.distance >= 0.1, _cat_null, _cat_planted),
    "psi (categories)": (categorical, lambda f: f.psi >= 0.2, _cat_null, _cat_planted),
    "verdict (numbers)": (numeric, lambda f: f.drifted, _num_null, _num_planted),
    "verdict (categories)": (categorical, lambda f: f.drifted, _cat_null, _cat_planted),
}


@pytest.mark.parametrize("measure", list(MEASURES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_null_is_quiet_and_planted_is_loud(measure: str, seed: int) -> None:
    compare, alarm, null, planted = MEASURES[measure]
    rng = np.random.default_rng(seed)
    assert not alarm(compare(*null(rng)))
    assert alarm(compare(*planted(rng)))


def _finite(f: FeatureDrift) -> None:
    for v in (f.statistic, f.p_value, f.psi, f.distance, f.effect, f.null_effect, f.null_p):
        assert math.isfinite(v), f
    assert f.reason


def test_numeric_edge_columns() -> None:
    rng = np.random.default_rng(3)
    normal = rng.normal(0, 1, N)
    empty = numeric(normal, np.array([], dtype=float))
    _finite(empty)
    assert not empty.drifted and "min_rows" in empty.reason
    all_nan = numeric(normal, np.full(500, np.nan))
    _finite(all_nan)
    assert all_nan.drifted and "null rate" in all_nan.reason and all_nan.distance == 0.0
    constant = numeric(np.full(N, 3.0), np.full(N, 3.0))  # one bin edge, std 0
    _finite(constant)
    assert not constant.drifted
    moved = numeric(np.full(N, 3.0), np.full(N, 5.0))
    _finite(moved)
    assert moved.drifted
    nan_ref = numeric(np.full(N, np.nan), normal)  # a column that was all null at training
    _finite(nan_ref)
    assert nan_ref.drifted and "null rate" in nan_ref.reason


def test_categorical_edge_columns() -> None:
    rng = np.random.default_rng(4)
    levels = rng.choice(list("abc"), N)
    empty = categorical(levels, np.array([], dtype=object))
    _finite(empty)
    assert not empty.drifted
    nulls = categorical(levels, np.array([None] * 500, dtype=object))
    _finite(nulls)
    assert nulls.drifted
    constant = categorical(np.array(["a"] * N, dtype=object), np.array(["a"] * N, dtype=object))
    _finite(constant)
    assert not constant.drifted


@pytest.mark.parametrize("seed", [0, 1])
def test_domain_classifier_conformance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kinds = {"x": "numeric", "c": "categorical"}

    def frame(shift: float, n: int = 2000) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.normal(shift, 1, n), "c": rng.choice(list("ab"), n)})

    assert not domain_classifier(frame(0), frame(0), kinds).drifted
    assert domain_classifier(frame(0), frame(0.5), kinds).drifted
    odd = frame(0)
    odd["x"] = np.nan  # an all-null column, a constant one, an empty window
    odd["c"] = "a"
    out = domain_classifier(frame(0), odd, kinds)
    assert math.isfinite(out.auc)
    empty = domain_classifier(frame(0), frame(0, n=0), kinds)
    assert empty.skipped and not empty.drifted


def test_a_category_gives_its_most_frequent_levels_the_rest_and_missing() -> None:
    """The domain classifier's columns for a categorical feature, a known answer: a level is
    its text (1, "1" and 1.0 are "1", "1", "1.0"), the most frequent first and ties in order
    of appearance, at most LEVELS of them, then one column for the other levels and one
    for missing."""
    values = pd.Series(
        [1, "1", 1.0, None, "b", "a", "b", "a", np.nan, *"cdefghij", "z", "z", "z"], dtype=object
    )
    block = _categorical_block(values)
    levels = ["z", "1", "b", "a", "1.0", "c", "d", "e"]  # z ×3; 1, b, a ×2; then first seen
    assert len(block) == LEVELS + 2 and len(levels) == LEVELS
    text = values.astype("string")
    for level, column in zip(levels, block, strict=False):
        np.testing.assert_array_equal(column, (text == level).fillna(False).to_numpy(float))
    np.testing.assert_array_equal(block[-2], [0.0] * 12 + [1.0] * 5 + [0.0] * 3)  # f g h i j
    np.testing.assert_array_equal(block[-1], values.isna().to_numpy(float))
    assert all(c.dtype == np.float64 for c in block)


def _wide(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """45 features: a 500-level code, a count with many ties, a flag, a skewed amount, a
    city with nulls and 40 normals: a flexible classifier has far more columns than rows."""
    return pd.DataFrame({
        "code": rng.integers(0, 500, n).astype(str),
        "count": rng.poisson(2, n).astype(float),
        "flag": rng.random(n) < 0.1,
        "amount": rng.lognormal(3, 1, n),
        "city": rng.choice(np.array(["tokyo", "osaka", "nagoya", None], dtype=object), n,
                           p=[0.5, 0.3, 0.15, 0.05]),
        **{f"x{i}": rng.normal(0, 1, n) for i in range(40)},
    })  # fmt: skip


WIDE = {"code": "categorical", "count": "numeric", "flag": "categorical", "amount": "numeric",
        "city": "categorical", **{f"x{i}": "numeric" for i in range(40)}}  # fmt: skip


@pytest.mark.parametrize("n", [60, 200, 1000])
def test_domain_classifier_is_quiet_on_small_wide_null_windows(n: int) -> None:
    """No alarm in 30 null draws. One test pooled over the folds' scores raised 2 and 1 here
    (at 60 and 200 rows): the folds' models share rows, so their scores are not independent."""
    alarms = []
    for trial in range(30):
        rng = np.random.default_rng([n, trial, 5])
        out = domain_classifier(_wide(n, rng), _wide(n, rng), WIDE)
        assert math.isfinite(out.auc) and 0 <= out.p_value <= 1
        alarms += [trial] if out.drifted else []
    assert alarms == []


def test_domain_classifier_sees_a_joint_change_on_a_wide_window() -> None:
    """The same 45 features, with two of the 40 normals made to move together (r = 0.6)."""
    rng = np.random.default_rng(3)
    ref, cur = _wide(3000, rng), _wide(3000, rng)
    cur["x7"] = 0.6 * cur["x3"] + 0.8 * cur["x7"]
    out = domain_classifier(ref, cur, WIDE)
    assert out.drifted
    assert {f for f, _ in out.top_features[:2]} == {"x3", "x7"}


def test_domain_classifier_bounds_a_very_wide_table() -> None:
    """300 features, 200 of them with 12 levels: each keeps its first column or few (the
    fit stays small), the null window stays quiet and a shifted feature is still found."""
    rng = np.random.default_rng(9)

    def frame(n: int, shift: float = 0.0) -> pd.DataFrame:
        numbers = {f"x{i}": rng.normal(shift if i == 0 else 0.0, 1, n) for i in range(100)}
        levels = {f"c{i}": rng.choice(list("abcdefghijkl"), n) for i in range(200)}
        return pd.DataFrame({**numbers, **levels})

    kinds = {f"x{i}": "numeric" for i in range(100)} | {f"c{i}": "categorical" for i in range(200)}
    quiet = domain_classifier(frame(3000), frame(3000), kinds)
    assert not quiet.drifted and math.isfinite(quiet.auc)
    moved = domain_classifier(frame(3000), frame(3000, shift=0.5), kinds)
    assert moved.drifted
    assert moved.top_features[0][0] == "x0"
