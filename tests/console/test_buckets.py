"""monitoring/buckets: the pre-aggregation the console reads instead of the raw log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from keizoku.monitoring import buckets
from keizoku.monitoring.log import log_dir
from rollout_support import MODEL, trained_project

START = 1_700_000_400.0 // 3600 * 3600  # an hour boundary


def _plant(home: Path, hours: int, per_hour: int, shift: float = 0.0) -> None:
    from console_support import DRIFTED
    from keizoku.monitoring.log import PredictionLog
    from keizoku.prediction import Prediction
    from rollout_support import frame

    rows = frame().sample(per_hour, random_state=1)  # the training rows: no drift
    log = PredictionLog(root=home, flush_interval_s=3600)
    for hour in range(hours):
        for i, row in enumerate(rows.to_dict("records")):
            inputs: dict[str, Any] = {
                k: (None if v != v else v) for k, v in row.items() if k != "species"
            }
            if shift and inputs[DRIFTED] is not None:
                inputs[DRIFTED] += shift
            pred = Prediction(row["species"], {row["species"]: 1.0}, None, 1, "champion",
                              f"h{hour}-{i}", None)  # fmt: skip
            log.append(pred, ts=START + hour * 3600 + i, model=MODEL, inputs=inputs,
                       latency_ms=float(i % 10))  # fmt: skip
    log.close()
    buckets.wait_folded()  # the log handed its segment to the folding thread


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("buckets")) as root:
        _plant(root / ".keizoku", hours=3, per_hour=100)
        yield root / ".keizoku"


def test_the_log_folds_each_segment_as_it_writes_it(home: Path) -> None:
    traffic = buckets.traffic_series(MODEL, buckets.HOUR, 0, home)
    assert [(t.bucket - START) / 3600 for t in traffic] == [0, 1, 2]
    assert [t.n for t in traffic] == [100, 100, 100]
    assert all(t.p50_ms <= t.p95_ms for t in traffic)
    days = buckets.traffic_series(MODEL, buckets.DAY, 0, home)
    assert sum(t.n for t in days) == 300
    drift = buckets.drift_series(MODEL, 1, buckets.HOUR, 0, home)
    assert "bill_length_mm" in drift and buckets.PREDICTION in drift
    assert [p.n for p in drift["bill_length_mm"]] == [100, 100, 100]


def test_a_segment_is_counted_once_and_catch_up_folds_the_rest(home: Path) -> None:
    segment = next(log_dir(MODEL, home).glob("*.parquet"))
    assert buckets.fold_table(MODEL, pq.read_table(segment), segment.name, home) is False
    assert buckets.catch_up(MODEL, home) == 0
    (log_dir(MODEL, home, "buckets") / "buckets.sqlite").unlink()  # lost: rebuilt from the log
    assert buckets.catch_up(MODEL, home) == 1
    assert [t.n for t in buckets.traffic_series(MODEL, buckets.HOUR, 0, home)] == [100] * 3


def test_a_shift_shows_in_the_shifted_feature_only(tmp_path: Path) -> None:
    with trained_project(tmp_path) as root:
        _plant(root / ".keizoku", hours=2, per_hour=300, shift=15.0)
        drift = buckets.drift_series(MODEL, 1, buckets.HOUR, 0, root / ".keizoku")
    flagged = {f for f, points in drift.items() if any(p.drifted for p in points)}
    assert flagged - {buckets.PREDICTION} == {"bill_length_mm"}  # the labels did not move
    assert all(p.drifted for p in drift["bill_length_mm"])
