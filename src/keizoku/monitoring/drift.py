"""Drift: compare a window of data with the reference statistics of a model version.

Numbers per feature type (defaults in ``DriftConfig``, overridable in the spec's
``monitoring:`` section):

* numbers: two tests on the reference quantile bins, combined by Bonferroni
  (p = 2·min(p_KS, p_χ²)): two-sample Kolmogorov-Smirnov (the statistic is the
  largest CDF gap at a bin edge, so it is a slight under-estimate and the test is
  conservative; it sees shifts of location) and chi-squared on the bin counts (it
  sees changes of spread and shape the KS misses); and the Wasserstein-1 distance
  divided by the reference standard deviation (the area between the CDFs on the
  bins, plus the two tails beyond the first and last edge from their partial
  means, so a pure shift of d standard deviations measures d);
* categories: chi-squared test of homogeneity (reference counts vs current
  counts, levels outside the reference's top levels pooled as ``__other__``,
  nulls a level of their own) and the Jensen-Shannon distance (base 2, 0…1);
* every feature: the null rate, by a 2×2 chi-squared test and Cohen's h
  (2·asin√p₁ − 2·asin√p₀) as its effect size; PSI (with a null bin) as a summary.

The rule (chosen by measurement, docs/decisions/0010-drift-defaults.md): a feature
drifts when its shape moved both *significantly* (test p < ``alpha``, 0.01: what
keeps small windows quiet on noise) and *enough* (an effect size that does not
shrink with the number of rows: Wasserstein/std ≥ a threshold that depends on the
window, or Jensen-Shannon ≥ ``categorical_threshold``, 0.1), or when its null rate
did (p < ``alpha`` and Cohen's h ≥ ``null_threshold``, 0.1). The numeric threshold
(:func:`numeric_limit`) is ``numeric_threshold`` (0.05) from about 5,000 rows a side;
below, the 99th percentile of the sketch distance on unchanged data at the window's
size, up to 0.1 (1,000 rows). Every verdict carries the ``effect`` it compared, the
``threshold`` and a one-line ``reason``.

All counting happens in DuckDB: one scan computes, per time bucket, the count of
values at or below each reference bin edge (numbers) and per level (categories),
so drift over a million logged rows never builds a DataFrame of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from keizoku.duration import Duration
from keizoku.monitoring.reference import OTHER, FeatureRef, Reference

__all__ = [
    "DriftConfig",
    "FeatureDrift",
    "psi",
    "js_distance",
    "ks_from_cdf",
    "wasserstein_from_cdf",
    "compare_numeric",
    "compare_categorical",
    "drift_rule",
    "NumericCounts",
    "numeric_counts",
    "drift_sql",
    "collect_counts",
    "BucketCounts",
    "tail_sums",
    "cohens_h",
    "numeric_limit",
]

EPS = 1e-4
# Wasserstein/std between two samples of one distribution, 99th percentile ≈
# NOISE_Q99·√(1/n_ref + 1/n_cur) (measured on the sketch for normal, log-normal and
# uniform columns at 1k-100k rows a side: bench/runners/drift_choose.py, decision 10)
NOISE_Q99 = 2.8


class DriftConfig(BaseModel):
    """Thresholds (spec ``monitoring:`` keys of the same names)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = 0.01  # the tests' significance (guards small windows against noise)
    numeric_threshold: float = 0.05  # Wasserstein-1 / reference std (raised in small windows)
    categorical_threshold: float = 0.1  # Jensen-Shannon distance (base 2)
    null_threshold: float = 0.1  # Cohen's h between the null rates
    psi_threshold: float = 0.2  # unused since the bucket charts plot the effect size
    min_rows: int = 30
    window: Duration = 86400.0  # the default --since
    recent: Duration = 3600.0  # the most recent part, judged beside the whole window
    multivariate: bool = True  # the domain classifier (needs a reference row sample)
    multivariate_rows: int = 5000  # rows sampled from each side
    auc_threshold: float = 0.55  # domain classifier AUC from which it is drift


@dataclass
class FeatureDrift:
    """One column's drift verdict and the numbers behind it."""

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float
    psi: float
    distance: float  # numbers: Wasserstein / ref std; categories: Jensen-Shannon
    distance_name: str
    null_rate_ref: float
    null_rate_cur: float
    n: int
    drifted: bool
    effect: float = 0.0  # the effect size the rule compared (distance or null-rate h)
    threshold: float = 0.0  # ... with this threshold
    reason: str = ""  # one line: why drifted or not
    null_effect: float = 0.0  # Cohen's h between the null rates
    null_p: float = 1.0
    tests: dict[str, float] = field(default_factory=dict)  # numbers: each test's p-value
    labels: list[str] = field(default_factory=list)
    ref_probs: list[float] = field(default_factory=list)
    cur_probs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _norm(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    total = p.sum()
    return p / total if total > 0 else np.full(len(p), 1.0 / max(len(p), 1))


def psi(ref: np.ndarray, cur: np.ndarray, eps: float = EPS) -> float:
    """Population stability index Σ (c - r)·ln(c / r) over bins (shares floored at ``eps``)."""
    r = np.clip(_norm(ref), eps, None)
    c = np.clip(_norm(cur), eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same, 1 = disjoint)."""
    p, q = _norm(ref), _norm(cur)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return float(math.sqrt(max(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0)))


def ks_from_cdf(
    cdf_ref: np.ndarray, cdf_cur: np.ndarray, n_ref: int, n_cur: int
) -> tuple[float, float]:
    """KS statistic (largest CDF gap at the bin edges) and its asymptotic p-value."""
    if len(cdf_ref) == 0 or n_ref == 0 or n_cur == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.asarray(cdf_ref) - np.asarray(cdf_cur))))
    en = math.sqrt(n_ref * n_cur / (n_ref + n_cur))
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d) if d > 0 else 1.0
    return d, min(max(p, 0.0), 1.0)


# The two distribution tails the tests need, in the standard library: importing
# ``scipy.special`` costs ``keizoku monitor`` 0.2-0.6 s of CPU, more than its drift maths.
# Both equal scipy's values (``special.kolmogorov``, ``special.chdtrc``) to 1e-10
# relative (tests/monitoring/test_bucket_monitor.py).


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (as ``scipy.special.kolmogorov``)."""
    if x <= 0:
        return 1.0
    if x < 1.0:  # 1 - √(2π)/x · Σ exp(-(2k-1)²π²/(8x²)): a few terms where x is small
        terms = (math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * x * x)) for k in range(1, 9))
        return min(max(1.0 - math.sqrt(2 * math.pi) / x * sum(terms), 0.0), 1.0)
    total = sum((1.0 if k % 2 else -1.0) * math.exp(-2 * k * k * x * x) for k in range(1, 12))
    return min(max(2 * total, 0.0), 1.0)


def chi2_sf(stat: float, dof: int) -> float:
    """P(χ²_dof > stat) = Q(dof/2, stat/2), the regularised upper incomplete gamma (as
    ``scipy.special.chdtrc``): a series below a + 1, a continued fraction above."""
    a, z = dof / 2, stat / 2
    if z <= 0:
        return 1.0
    scale = math.exp(-z + a * math.log(z) - math.lgamma(a))
    if z < a + 1:  # P by its series, Q = 1 - P (Q is not small here)
        term = total = 1.0 / a
        k = a
        while abs(term) > abs(total) * 1e-17:
            k += 1
            term *= z / k
            total += term
        return min(max(1.0 - total * scale, 0.0), 1.0)
    tiny = 1e-300  # Lentz's method for the continued fraction of Q
    b = z + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1) < 1e-16:
            break
    return min(max(scale * h, 0.0), 1.0)


def wasserstein_from_cdf(
    edges: np.ndarray, cdf_ref: np.ndarray, cdf_cur: np.ndarray, scale: float | None
) -> float:
    """∫|F_ref − F_cur| dx between the first and last edge, divided by ``scale``."""
    e = np.asarray(edges, dtype=float)
    if len(e) < 2:
        return 0.0
    gaps = np.abs(np.asarray(cdf_ref) - np.asarray(cdf_cur))
    mids = (gaps[:-1] + gaps[1:]) / 2
    w = float(np.sum(mids * np.diff(e)))
    return w / scale if scale and scale > 0 else w


@dataclass
class NumericCounts:
    """Current counts for one numeric column: total rows, nulls, and count ≤ each edge.

    ``below``/``above``: Σ max(first edge − x, 0) and Σ max(x − last edge, 0) over the
    values (the tails of the Wasserstein distance); None when not counted.
    """

    n: int
    nulls: int
    le: np.ndarray
    below: float | None = None
    above: float | None = None


def numeric_counts(values: np.ndarray, ref: FeatureRef) -> NumericCounts:
    """``NumericCounts`` of in-memory ``values`` on ``ref``'s edges (NaN = null)."""
    values = np.asarray(values, dtype=float)
    ok = np.sort(values[~np.isnan(values)])
    below, above = tail_sums(ok, ref.edges)
    return NumericCounts(
        n=len(values),
        nulls=int(len(values) - len(ok)),
        le=np.searchsorted(ok, np.asarray(ref.edges), side="right").astype(float),
        below=below,
        above=above,
    )


def tail_sums(values: np.ndarray, edges: list[float]) -> tuple[float, float]:
    """(Σ max(e₀ − x, 0), Σ max(x − e_last, 0)) over the non-null ``values``."""
    ok = np.asarray(values, dtype=float)
    ok = ok[~np.isnan(ok)]
    if not edges or len(ok) == 0:
        return 0.0, 0.0
    return float(np.maximum(edges[0] - ok, 0).sum()), float(np.maximum(ok - edges[-1], 0).sum())


def _tails(ref: FeatureRef, cur: NumericCounts, nonnull: int) -> float:
    """The Wasserstein area beyond the first and last edge (0 when either side lacks it)."""
    if ref.below is None or ref.above is None or cur.below is None or cur.above is None:
        return 0.0
    if nonnull == 0:
        return 0.0
    return abs(ref.below - cur.below / nonnull) + abs(ref.above - cur.above / nonnull)


def numeric_limit(cfg: DriftConfig, n_ref: int, n_cur: int) -> float:
    """The Wasserstein/std threshold for ``n_ref`` and ``n_cur`` non-null values:
    ``numeric_threshold``, raised to the distance's 99th percentile on unchanged data at
    that size where it is larger (small windows), up to twice ``numeric_threshold``."""
    t = cfg.numeric_threshold
    if n_ref <= 0 or n_cur <= 0:
        return 2 * t
    return max(t, min(NOISE_Q99 * math.sqrt(1 / n_ref + 1 / n_cur), 2 * t))


def compare_numeric(
    name: str, ref: FeatureRef, cur: NumericCounts, cfg: DriftConfig
) -> FeatureDrift:
    nonnull = cur.n - cur.nulls
    n_ref = int(ref.n * (1 - ref.null_rate))
    cdf_ref = np.asarray(ref.cdf, dtype=float)
    cdf_cur = cur.le / nonnull if nonnull else np.zeros(len(cdf_ref))
    d, p_ks = ks_from_cdf(cdf_ref, cdf_cur, n_ref, nonnull)
    ref_bins = ref.bin_probs() * (1 - ref.null_rate)
    cur_bins = np.diff(np.concatenate([[0.0], cdf_cur, [1.0]])) if nonnull else ref_bins * 0
    _, p_chi2 = _chi2(ref.bin_probs() * n_ref, cur_bins * nonnull)  # (1.0 without rows)
    cur_bins = cur_bins * (nonnull / cur.n if cur.n else 0)
    ref_all = np.concatenate([ref_bins, [ref.null_rate]])
    cur_all = np.concatenate([cur_bins, [cur.nulls / cur.n if cur.n else 0.0]])
    value = psi(ref_all, cur_all) if cur.n else 0.0
    w = 0.0
    if nonnull:
        w = wasserstein_from_cdf(np.asarray(ref.edges), cdf_ref, cdf_cur, None)
        w += _tails(ref, cur, nonnull)
        w = w / ref.std if ref.std else w
    labels = _bin_labels(ref.edges) + ["null"]
    fd = FeatureDrift(
        feature=name,
        kind="numeric",
        test="ks+chi2",
        statistic=d,
        p_value=min(1.0, 2 * min(p_ks, p_chi2)),
        psi=value,
        distance=w,
        distance_name="wasserstein/std",
        null_rate_ref=ref.null_rate,
        null_rate_cur=cur.nulls / cur.n if cur.n else 0.0,
        n=cur.n,
        drifted=False,
        labels=labels,
        ref_probs=[float(x) for x in ref_all],
        cur_probs=[float(x) for x in cur_all],
    )
    fd.tests = {"ks": p_ks, "chi2": p_chi2}
    return _decide(fd, cfg, ref, cur.n, numeric_limit(cfg, n_ref, nonnull))


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    out = [f"≤{edges[0]:.3g}"]
    out += [f"{a:.3g}…{b:.3g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    out.append(f">{edges[-1]:.3g}")
    return out


def compare_categorical(
    name: str, ref: FeatureRef, counts: dict[str | None, int], cfg: DriftConfig
) -> FeatureDrift:
    """``counts``: level → count over the window (None = null, ``OTHER`` = unseen levels)."""
    levels = list(ref.frequencies) + [OTHER]
    n = int(sum(counts.values()))
    nulls = int(counts.get(None, 0))
    ref_share = np.array([ref.frequencies[k] for k in ref.frequencies] + [ref.other])
    ref_all = np.concatenate([ref_share * (1 - ref.null_rate), [ref.null_rate]])
    cur_counts = np.array([counts.get(k, 0) for k in levels] + [nulls], dtype=float)
    cur_all = cur_counts / n if n else cur_counts
    stat, p = _chi2(ref_all * ref.n, cur_counts)
    fd = FeatureDrift(
        feature=name,
        kind="categorical",
        test="chi2",
        statistic=stat,
        p_value=p,
        psi=psi(ref_all, cur_all) if n else 0.0,
        distance=js_distance(ref_all, cur_all) if n else 0.0,
        distance_name="jensen-shannon",
        null_rate_ref=ref.null_rate,
        null_rate_cur=nulls / n if n else 0.0,
        n=n,
        drifted=False,
        labels=levels + ["null"],
        ref_probs=[float(x) for x in ref_all],
        cur_probs=[float(x) for x in cur_all],
    )
    return _decide(fd, cfg, ref, n, cfg.categorical_threshold)


def cohens_h(p0: float, p1: float) -> float:
    """Cohen's h between two proportions: |2·asin√p₁ − 2·asin√p₀| (0.2 is "small")."""
    return abs(2 * math.asin(math.sqrt(min(max(p1, 0.0), 1.0)))
               - 2 * math.asin(math.sqrt(min(max(p0, 0.0), 1.0))))  # fmt: skip


def _null_test(ref: FeatureRef, nulls_cur: int, n_cur: int) -> tuple[float, float]:
    """(Cohen's h, p-value of the 2×2 chi-squared test) of the null rate."""
    if n_cur == 0:
        return 0.0, 1.0
    h = cohens_h(ref.null_rate, nulls_cur / n_cur)
    ref_nulls = ref.null_rate * ref.n
    table = np.array([[ref_nulls, ref.n - ref_nulls], [nulls_cur, n_cur - nulls_cur]])
    if (table.sum(axis=0) == 0).any():  # no nulls (or only nulls) on either side
        return h, 1.0
    return h, _chi2_table(table)[1]


def drift_rule(
    kind: str, p_value: float, distance: float, null_p: float, null_effect: float,
    cfg: DriftConfig, limit: float | None = None,
) -> tuple[bool, bool, float]:  # fmt: skip
    """The rule on a judged column's statistics: (shape drifted, null rate drifted, the
    distance threshold used). ``limit``: the distance threshold (default: the kind's
    configured one; a numeric column's window gives :func:`numeric_limit`). Stored
    statistics are judged again with it (``monitoring.buckets``), so a spec's thresholds
    apply to what was measured before."""
    if limit is None:
        limit = cfg.numeric_threshold if kind == "numeric" else cfg.categorical_threshold
    shape = p_value < cfg.alpha and distance >= limit
    nulls = null_p < cfg.alpha and null_effect >= cfg.null_threshold
    return bool(shape), bool(nulls), limit


def _decide(
    fd: FeatureDrift, cfg: DriftConfig, ref: FeatureRef, n: int, limit: float
) -> FeatureDrift:
    """Drift = significant (p < alpha) and large enough (effect ≥ ``limit``); say why."""
    fd.null_effect, fd.null_p = _null_test(ref, round(fd.null_rate_cur * n), n)
    if n < cfg.min_rows:
        fd.drifted, fd.threshold = False, 0.0
        fd.reason = f"{n} rows < min_rows {cfg.min_rows}: not judged"
        return fd
    shape, nulls, limit = drift_rule(fd.kind, fd.p_value, fd.distance, fd.null_p,
                                     fd.null_effect, cfg, limit)  # fmt: skip
    fd.drifted = shape or nulls
    if nulls and not shape:
        fd.effect, fd.threshold = fd.null_effect, cfg.null_threshold
        fd.reason = (
            f"null rate {fd.null_rate_ref:.1%}→{fd.null_rate_cur:.1%}: Cohen's h "
            f"{fd.null_effect:.3f} ≥ {cfg.null_threshold:g}, p={fd.null_p:.2g} < {cfg.alpha:g}"
        )
        return fd
    fd.effect, fd.threshold = fd.distance, limit
    big = "≥" if fd.distance >= limit else "<"
    sig = "<" if fd.p_value < cfg.alpha else "≥"
    parts = " ".join(f"{t} p={v:.2g}" for t, v in fd.tests.items())
    combined = f"{parts}: 2×min p={fd.p_value:.2g}" if parts else f"{fd.test} p={fd.p_value:.2g}"
    size = f" (threshold at {n - round(fd.null_rate_cur * n):,} values)" if fd.tests else ""
    fd.reason = (
        f"{fd.distance_name} {fd.distance:.3f} {big} {limit:.3g}{size}, "
        f"{combined} {sig} {cfg.alpha:g}"
    )
    return fd


def _chi2(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    keep = (ref_counts + cur_counts) > 0
    table = np.vstack([ref_counts[keep], cur_counts[keep]])
    if table.shape[1] < 2 or cur_counts.sum() == 0 or ref_counts.sum() == 0:
        return 0.0, 1.0
    return _chi2_table(table)


def _chi2_table(table: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-squared test of homogeneity on a 2×k table with no empty row or
    column: (statistic, p-value), as ``scipy.stats.chi2_contingency(table,
    correction=False)`` gives them (a test checks), without importing ``scipy.stats``
    (0.5-3 s, more than ``keizoku monitor`` over the bucket pre-aggregates takes in all)."""
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    if dof == 0:
        return 0.0, 1.0
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, chi2_sf(stat, dof)


# --- SQL ---------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _features(
    reference: Reference, columns: dict[str, str], prediction: str | None
) -> tuple[dict[str, FeatureRef], dict[str, str]]:
    feats = dict(reference.features)
    exprs = dict(columns)
    if reference.prediction is not None and prediction is not None:
        feats["__prediction__"] = reference.prediction
        exprs["__prediction__"] = prediction
    return feats, exprs


def drift_sql(
    source: str, reference: Reference, columns: dict[str, str], prediction: str | None
) -> str:
    """One aggregate query over ``source`` (a SELECT with a ``bucket`` column).

    Per bucket and feature it counts non-null values and, with DuckDB's
    ``histogram(x, boundaries)`` (a binary search per value), the values in each
    reference bin — or, for categories, per reference level (others pooled).
    ``columns`` maps feature → column expression (absent: all null); ``prediction``
    is the column to compare with the reference prediction distribution.
    """
    feats, exprs = _features(reference, columns, prediction)
    aggs = ["count(*) AS n"]
    for i, (name, ref) in enumerate(feats.items()):
        expr = exprs.get(name)
        if ref.kind == "numeric":
            col = f"TRY_CAST({expr} AS DOUBLE)" if expr else "CAST(NULL AS DOUBLE)"
            bounds = "[" + ", ".join(repr(float(e)) for e in ref.edges) + "]::DOUBLE[]"
            hist = f"histogram({col}, {bounds})" if ref.edges else f"count({col})"
            aggs += [f"count({col}) AS nn{i}", f"{hist} AS h{i}"]
            if ref.edges:
                lo, hi = repr(float(ref.edges[0])), repr(float(ref.edges[-1]))
                aggs += [
                    f"sum(greatest({lo} - {col}, 0)) AS lo{i}",
                    f"sum(greatest({col} - {hi}, 0)) AS hi{i}",
                ]
        else:
            col = f"CAST({expr} AS VARCHAR)" if expr else "CAST(NULL AS VARCHAR)"
            known = ", ".join(_lit(k) for k in ref.frequencies) or "NULL"
            level = f"CASE WHEN {col} IN ({known}) THEN {col} ELSE {_lit(OTHER)} END"
            aggs += [
                f"count({col}) AS nn{i}",
                f"histogram({level}) FILTER (WHERE {col} IS NOT NULL) AS h{i}",
            ]
    return (
        f"WITH src AS ({source}) SELECT bucket, {', '.join(aggs)} "
        "FROM src GROUP BY bucket ORDER BY bucket"
    )


@dataclass
class BucketCounts:
    """Counts per time bucket, per feature, as drift needs them."""

    buckets: list[float]
    rows: dict[float, int]
    numeric: dict[str, dict[float, NumericCounts]]
    categorical: dict[str, dict[float, dict[str | None, int]]]


def _cumulative(hist: Any, edges: list[float]) -> np.ndarray:
    """Counts ≤ each edge from a ``histogram`` map {upper bound: count}."""
    if not isinstance(hist, dict):
        return np.zeros(len(edges))
    per = np.array([hist.get(float(e), 0) for e in edges], dtype=float)
    return np.cumsum(per)


def collect_counts(
    con: Any, source: str, reference: Reference, columns: dict[str, str], prediction: str | None
) -> BucketCounts:
    """Run the drift query on DuckDB connection ``con`` (one scan of ``source``)."""
    feats, _ = _features(reference, columns, prediction)
    cur = con.execute(drift_sql(source, reference, columns, prediction))
    header = {d[0]: k for k, d in enumerate(cur.description)}
    rows = cur.fetchall()
    totals = {float(r[0]): int(r[1]) for r in rows}
    numeric: dict[str, dict[float, NumericCounts]] = {}
    categorical: dict[str, dict[float, dict[str | None, int]]] = {}
    for i, (name, ref) in enumerate(feats.items()):
        for r in rows:
            b, n, nn, hist = float(r[0]), int(r[1]), int(r[header[f"nn{i}"]]), r[header[f"h{i}"]]
            if ref.kind == "numeric":
                le = _cumulative(hist, ref.edges)
                lo = float(r[header[f"lo{i}"]] or 0.0) if ref.edges else 0.0
                hi = float(r[header[f"hi{i}"]] or 0.0) if ref.edges else 0.0
                numeric.setdefault(name, {})[b] = NumericCounts(n, n - nn, le, lo, hi)
            else:
                levels: dict[str | None, int] = dict(hist) if isinstance(hist, dict) else {}
                levels[None] = n - nn
                categorical.setdefault(name, {})[b] = levels
        if ref.kind == "numeric":
            numeric.setdefault(name, {})
        else:
            categorical.setdefault(name, {})
    return BucketCounts(sorted(totals), totals, numeric, categorical)


def merge_numeric(parts: list[NumericCounts], n_edges: int) -> NumericCounts:
    if not parts:
        return NumericCounts(0, 0, np.zeros(n_edges))
    known = all(p.below is not None and p.above is not None for p in parts)
    return NumericCounts(
        sum(p.n for p in parts),
        sum(p.nulls for p in parts),
        sum(p.le for p in parts),  # type: ignore[arg-type]
        sum(p.below or 0.0 for p in parts) if known else None,
        sum(p.above or 0.0 for p in parts) if known else None,
    )


def merge_levels(parts: list[dict[str | None, int]]) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0) + v
    return out
