"""`keizoku monitor` over the log reads the hourly/daily pre-aggregates, and judges exactly
as the row scan does: on a seeded log with planted drift and on a null log, feature by
feature, bucket by bucket, the first bucket of the drift and the recent window; it falls
back to the rows, and says why, where the buckets do not hold the window's rows (real
registry, real log written by ``PredictionLog``, the real executable)."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kzsupport import log_prediction
from rollout_support import MODEL, cli, frame, trained_project

pytestmark = pytest.mark.slow

HOUR = 3600
DAYS = 5  # the log spans five days: a 24 h window reads hours, a 5 d window days
SHIFT_FROM = 10  # the planted shift fills the last SHIFT_FROM hours
PER_HOUR = 100


def _rows(source: pd.DataFrame, n: int, seed: int, shifted: bool) -> pd.DataFrame:
    rows = source.sample(n, replace=True, random_state=seed)
    if shifted:  # heavier birds, more of them from Dream, a third of the sexes unknown
        rows["body_mass_g"] = rows["body_mass_g"] + 700  # ≈ 0.9 sd
        rows.loc[rows.sample(frac=0.4, random_state=seed).index, "island"] = "Dream"
        rows.loc[rows.sample(frac=0.33, random_state=seed + 1).index, "sex"] = None
    return rows.reset_index(drop=True)


def _write(planted: bool, end: float) -> None:
    """DAYS × 24 hours of PER_HOUR rows each (one flush, so one segment, per six hours); with
    ``planted``, the last SHIFT_FROM hours shifted."""
    from keizoku.monitoring.log import PredictionLog

    hours = DAYS * 24
    source = frame()  # read once: each hour samples its rows from it
    with PredictionLog(flush_interval_s=3600) as log:
        for h in range(hours):
            shifted = planted and h >= hours - SHIFT_FROM
            rows = _rows(source, PER_HOUR, seed=h, shifted=shifted)
            base = end - (hours - h) * HOUR + 30
            for i, rec in enumerate(rows.to_dict("records")):
                label = rec.pop("species")  # the model's prediction: the true species
                log_prediction(
                    log, request_id=f"r{h}-{i}", ts=base + i * 30, model=MODEL, version=1,
                    variant="champion", inputs={k: (None if v != v else v) for k, v in rec.items()},
                    prediction=label,
                )  # fmt: skip
            if h % 6 == 5:
                log.flush()


@pytest.fixture(scope="module", params=["planted", "null"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Path, bool]]:  # fmt: skip
    with trained_project(tmp_path_factory.mktemp(f"buckets-{request.param}")) as root:
        _write(request.param == "planted", end=math.floor(time.time() / HOUR) * HOUR)
        yield root, request.param == "planted"


def _both(window_s: float) -> tuple[Any, Any]:
    from keizoku.monitoring.drift import DriftConfig
    from keizoku.monitoring.monitor import monitor

    cfg = DriftConfig(multivariate=False)
    rows = monitor(MODEL, version=1, since_s=window_s, config=cfg, estimate=False, rows=True)
    kept = monitor(MODEL, version=1, since_s=window_s, config=cfg, estimate=False)
    return rows, kept


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
        elif isinstance(value, list) and value and isinstance(value[0], float):
            assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert b[key] == value, key


@pytest.mark.parametrize("window", ["24h", "5d"])
def test_buckets_and_rows_give_the_same_verdicts(project: tuple[Path, bool], window: str) -> None:
    from keizoku.duration import parse_duration

    _, planted = project
    rows, kept = _both(parse_duration(window))
    assert rows.counts_from == "the rows (asked for)"
    assert kept.counts_from.startswith("the bucket pre-aggregates (")
    assert kept.n_rows == rows.n_rows and kept.since == rows.since
    assert kept.since % HOUR == 0 and rows.until - kept.since >= parse_duration(window)
    assert kept.bucket_s == (HOUR if window == "24h" else 86400)
    by_feature = {f.feature: f for f in rows.features}
    assert [f.feature for f in kept.features] == list(by_feature)
    for f in kept.features:
        _same(by_feature[f.feature].to_dict(), f.to_dict())
    _same(rows.prediction.to_dict(), kept.prediction.to_dict())
    assert kept.buckets == rows.buckets and kept.started == rows.started
    assert [f.to_dict()["drifted"] for f in kept.recent] == [
        f.to_dict()["drifted"] for f in rows.recent
    ]
    assert kept.timeline.keys() == rows.timeline.keys()
    for k, series in rows.timeline.items():
        assert [b for b, _ in kept.timeline[k]] == [b for b, _ in series]
        assert [d for _, d in kept.timeline[k]] == pytest.approx([d for _, d in series], abs=1e-9)
    drifted = set(kept.drifted)
    if not planted:  # (an hour alone may alarm by chance: 1 % per feature and hour)
        assert drifted == set()
        return
    assert {"body_mass_g", "island", "sex"} <= drifted
    assert not {"bill_length_mm", "bill_depth_mm", "flipper_length_mm"} & drifted
    if window == "24h":  # hour by hour: the shift started SHIFT_FROM hours before the end
        start = kept.until - kept.until % HOUR - SHIFT_FROM * HOUR
        assert kept.started["body_mass_g"] == start
        assert kept.started["island"] == start


def test_the_command_reads_the_buckets_and_says_so(project: tuple[Path, bool]) -> None:
    root, planted = project
    fast = cli(root, "monitor", MODEL, "--version", "1", "--since", "24h", "--json",
               "--no-multivariate")  # fmt: skip
    slow = cli(root, "monitor", MODEL, "--version", "1", "--since", "24h", "--json",
               "--no-multivariate", "--from-rows")  # fmt: skip
    assert fast.returncode == slow.returncode == (10 if planted else 0), fast.stderr
    a, b = json.loads(fast.stdout), json.loads(slow.stdout)
    assert a["counts_from"].startswith("the bucket pre-aggregates")
    assert b["counts_from"] == "the rows (asked for)"
    assert a["drifted"] == b["drifted"] and a["started"] == b["started"]
    assert [f["p_value"] for f in a["features"]] == pytest.approx(
        [f["p_value"] for f in b["features"]], rel=1e-9
    )
    assert "rows" not in a["timings"] and "rows" in b["timings"]
    text = cli(root, "monitor", MODEL, "--version", "1", "--since", "24h", "--no-multivariate")
    assert "Drift counts from the bucket pre-aggregates" in " ".join(text.stdout.split())


def _buckets_db(root: Path) -> Path:
    from keizoku.monitoring.log import log_dir

    assert root.is_dir()
    return log_dir(MODEL, None, "buckets") / "buckets.sqlite"


def test_a_segment_not_folded_yet_is_folded_first(project: tuple[Path, bool]) -> None:
    """A segment written without folding (as by a process that died before its fold) is
    folded by the next monitor, which then reads the buckets."""
    from keizoku.monitoring import buckets
    from keizoku.monitoring.log import log_dir, write_segment

    root, _ = project
    seg = sorted(log_dir(MODEL).glob("seg-*.parquet"))[-1]
    table = pq.read_table(seg)
    copy = table.set_column(0, "request_id", pa.array([f"x{i}" for i in range(table.num_rows)]))
    written = write_segment(log_dir(MODEL), copy)
    assert written.name not in buckets.folded_segments(MODEL)
    rows, kept = _both(24 * HOUR)
    assert written.name in buckets.folded_segments(MODEL)
    assert kept.counts_from.startswith("the bucket pre-aggregates")
    assert kept.n_rows == rows.n_rows and kept.drifted == rows.drifted


def test_each_day_holds_what_a_scan_of_its_rows_counts(project: tuple[Path, bool]) -> None:
    """A fold counts a segment's hours in one scan and adds them up to days: each stored day
    holds what the drift query (``drift.collect_counts``) counts in that day's logged rows."""
    from keizoku.monitoring import buckets
    from keizoku.monitoring.drift import collect_counts
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.monitoring.log import FEATURE_PREFIX, log_scan, segment_glob
    from keizoku.monitoring.reference import load_reference

    root, _ = project
    buckets.catch_up(MODEL)
    ref = load_reference(f"{MODEL}:1")
    assert ref is not None and ref.prediction is not None
    source = (f"SELECT floor(ts / {buckets.DAY}) * {buckets.DAY} AS bucket, * FROM "
              f"{log_scan(segment_glob(MODEL))} WHERE version = 1 AND NOT shadow")  # fmt: skip
    columns = {f: f'"{FEATURE_PREFIX}{f}"' for f in ref.features}
    prediction = "score" if ref.prediction.kind == "numeric" else "prediction"
    with duckdb_cursor() as con:
        scanned = collect_counts(con, source, ref, columns, prediction)
    with sqlite3.connect(_buckets_db(root)) as conn:
        stored = {(bucket, feature): counts for bucket, feature, counts in conn.execute(
            "SELECT bucket, feature, counts FROM drift WHERE width = ? AND version = 1",
            (buckets.DAY,))}  # fmt: skip
    assert sorted({bucket for bucket, _ in stored}) == scanned.buckets
    assert len(scanned.buckets) >= DAYS
    for feature, per in scanned.numeric.items():
        for bucket, num in per.items():
            day = json.loads(stored[(bucket, feature)])
            assert (day["n"], day["nulls"], day["le"]) == (num.n, num.nulls, num.le.tolist())
            assert [day["below"], day["above"]] == pytest.approx([num.below, num.above])
    for feature, per_levels in scanned.categorical.items():
        for bucket, levels in per_levels.items():
            day = {(None if k == "\x00null" else k): v
                   for k, v in json.loads(stored[(bucket, feature)]).items()}  # fmt: skip
            assert {k: v for k, v in day.items() if v} == {k: v for k, v in levels.items() if v}


def test_buckets_without_the_counts_fall_back_to_the_rows(
    project: tuple[Path, bool], tmp_path: Path
) -> None:
    """An hour folded without this version's drift counts (a log written before the version
    had a reference, or before buckets stored them): the rows, and the output says why."""
    import shutil

    root, _ = project
    db = _buckets_db(root)
    saved = tmp_path / "buckets.sqlite"
    shutil.copy(db, saved)
    try:
        with sqlite3.connect(db) as conn:
            hour = conn.execute("SELECT max(bucket) FROM drift WHERE width=3600").fetchone()[0]
            conn.execute("DELETE FROM drift WHERE width=3600 AND bucket=?", (hour,))
        rows, kept = _both(24 * HOUR)
    finally:
        shutil.copy(saved, db)
    assert kept.counts_from.startswith("the rows (the bucket of ")
    assert "lacks the drift counts" in kept.counts_from
    assert kept.drifted == rows.drifted and kept.n_rows == rows.n_rows


def test_rows_of_another_version_in_the_window_are_read_from_the_log(
    project: tuple[Path, bool], tmp_path: Path
) -> None:
    """The row scan judges every served row against the version's reference; the buckets
    hold each version's rows against its own, so a window where version 2 also served is
    counted from the rows."""
    import shutil

    root, _ = project
    db = _buckets_db(root)
    saved = tmp_path / "buckets.sqlite"
    shutil.copy(db, saved)
    try:
        with sqlite3.connect(db) as conn:  # as if version 2 had served 5 rows an hour ago
            hour = math.floor(time.time() / HOUR) * HOUR - HOUR
            conn.execute("INSERT INTO traffic VALUES (3600, ?, 2, 5, ?)",
                         (hour, json.dumps([5] + [0] * 13)))  # fmt: skip
        _, kept = _both(24 * HOUR)
    finally:
        shutil.copy(saved, db)
    assert kept.counts_from == "the rows (version(s) 2 also served rows in the window)"


def test_the_chi_squared_test_matches_scipy() -> None:
    """drift's chi-squared test (from ``scipy.special``, to keep ``scipy.stats`` out of the
    monitor's start) gives scipy.stats.chi2_contingency's statistic and p-value."""
    from scipy import stats

    from keizoku.monitoring.drift import _chi2_table

    rng = np.random.default_rng(0)
    for k in (2, 3, 5, 21):
        table = rng.integers(1, 500, size=(2, k)).astype(float)
        table[0] *= 3.7
        stat, p, _, _ = stats.chi2_contingency(table, correction=False)
        assert _chi2_table(table) == pytest.approx((stat, p), rel=1e-9, abs=1e-300)


def test_theweighted_auc_matches_scikit_learn() -> None:
    """The CBPE's ROC AUC (numpy, to keep scikit-learn out of the monitor's start) gives
    roc_auc_score's value with each row a positive of weight q and a negative of 1 - q."""
    from sklearn.metrics import roc_auc_score

    from keizoku.monitoring.estimate import weighted_auc

    rng = np.random.default_rng(1)
    for n in (5, 200, 5000):
        s = np.round(rng.random(n), 2)  # rounded: many ties
        q = np.clip(s + rng.normal(0, 0.3, n), 0, 1)
        y = np.concatenate([np.ones(n), np.zeros(n)])
        want = roc_auc_score(y, np.concatenate([s, s]), sample_weight=np.concatenate([q, 1 - q]))
        assert weighted_auc(s, q) == pytest.approx(want, rel=1e-12)


def test_the_distribution_tails_match_scipy() -> None:
    """The KS and chi-squared tails in the standard library (to keep scipy out of the
    monitor's start) equal scipy.special's, from p ≈ 1 down to the smallest doubles."""
    from scipy import special

    from keizoku.monitoring.drift import chi2_sf, kolmogorov_sf

    for x in [0.01, 0.2, 0.5, 0.8, 0.99, 1.0, 1.01, 1.3, 2.0, 3.5, 6.0, 10.0, 18.0]:
        want = float(special.kolmogorov(x))
        assert kolmogorov_sf(x) == pytest.approx(want, rel=1e-10, abs=1e-300), x
    for dof in (1, 2, 3, 19, 20, 21, 50):
        for stat in [1e-6, 0.1, 0.5, 1.0, 5.0, dof - 1.0, dof + 0.5, dof + 3.0, 40.0, 100.0,
                     700.0, 1400.0]:  # fmt: skip
            if stat <= 0:
                continue
            want = float(special.chdtrc(dof, stat))
            assert chi2_sf(stat, dof) == pytest.approx(want, rel=1e-10, abs=1e-300), (dof, stat)
