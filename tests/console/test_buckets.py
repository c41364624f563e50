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


def test_the_spec_thresholds_judge_the_stored_statistics(tmp_path: Path) -> None:
    from keizoku.monitoring.drift import DriftConfig

    with trained_project(tmp_path) as root:
        _plant(root / ".keizoku", hours=1, per_hour=300, shift=15.0)
        home = root / ".keizoku"
        default = buckets.drift_series(MODEL, 1, buckets.HOUR, 0, home)
        lenient = buckets.drift_series(
            MODEL, 1, buckets.HOUR, 0, home, DriftConfig(numeric_threshold=50.0)
        )
    assert default["bill_length_mm"][0].drifted and default["bill_length_mm"][0].threshold == 0.1
    point = lenient["bill_length_mm"][0]
    assert not point.drifted and point.threshold == 50.0
    assert point.distance == default["bill_length_mm"][0].distance  # measured once, judged twice


def test_requests_of_several_processes_add_up(home: Path) -> None:
    from keizoku.serving.metrics import BUCKETS, Metrics

    workers = [Metrics(root=home), Metrics(root=home)]  # two processes of one home
    for status, seconds in ((200, 0.003), (200, 0.003), (422, 0.001)):
        workers[0].request(MODEL, "1", "champion", status, seconds)
    workers[1].request(MODEL, "1", "champion", 200, 0.2)
    workers[1].request("<unknown>", "-", "-", 404, 0.001)  # no such model: not shared
    for w in workers:
        w.share()
    hours = buckets.request_series(MODEL, buckets.HOUR, 0, home)
    assert [(p.requests, p.errors) for p in hours] == [(4, 1)]
    assert buckets.percentile(hours[0].latency, 0.5, BUCKETS) == 0.005
    assert buckets.percentile(hours[0].latency, 0.99, BUCKETS) == 0.25
    assert sum(p.requests for p in buckets.request_series(MODEL, buckets.DAY, 0, home)) == 4
    assert [p.name for p in log_dir(MODEL, home, "buckets").parent.iterdir()] == [MODEL]


def test_a_process_shares_its_requests_at_its_interval(tmp_path: Path) -> None:
    """Without an exit or a ``share()`` call: the sharing thread (``serve --share-interval``)."""
    from keizoku.serving.metrics import Metrics
    from kzsupport import until

    metrics = Metrics(root=tmp_path, share_s=0.1)
    for status in (200, 200, 503):
        metrics.request(MODEL, "1", "champion", status, 0.002)
    shared = until(lambda: buckets.request_series(MODEL, buckets.HOUR, 0, tmp_path), 30,
                   "the requests shared by the thread")  # fmt: skip
    assert [(p.requests, p.errors) for p in shared] == [(3, 1)]


def test_labels_score_their_buckets_and_a_later_label_replaces_one(home: Path) -> None:
    from keizoku.monitoring.feedback import record_feedback
    from rollout_support import frame

    rows = frame().sample(100, random_state=1).to_dict("records")  # as _plant logged them
    other = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
    right = [{"request_id": f"h0-{i}", "label": r["species"]} for i, r in enumerate(rows)]
    wrong = [{"request_id": f"h1-{i}", "label": other[r["species"]] if i % 4 == 0 else
              r["species"]} for i, r in enumerate(rows)]  # fmt: skip
    record_feedback(MODEL, right + wrong, root=home)
    assert buckets.catch_up(MODEL, home) == 1
    metric = buckets.label_series(MODEL, 1, buckets.HOUR, 0, home)[0].metric
    points = buckets.label_series(MODEL, 1, buckets.HOUR, 0, home)
    assert [((p.bucket - START) / 3600, p.n) for p in points] == [(0, 100), (1, 100)]
    if metric == "accuracy":
        assert [p.value for p in points] == [1.0, 0.75]
    else:  # a loss: the wrong labels make hour 1 worse
        assert points[0].value is not None and points[1].value is not None
        assert points[1].value > points[0].value
    record_feedback(MODEL, [{"request_id": f"h1-{i}", "label": r["species"]}
                            for i, r in enumerate(rows)], root=home)  # fmt: skip
    assert buckets.catch_up(MODEL, home) == 1 and buckets.catch_up(MODEL, home) == 0
    again = buckets.label_series(MODEL, 1, buckets.HOUR, 0, home)
    assert [p.n for p in again] == [100, 100] and again[1].value == again[0].value
    day = buckets.label_series(MODEL, 1, buckets.DAY, 0, home)
    assert [p.n for p in day] == [200]


def test_the_confidence_estimate_merges_segments_exactly(tmp_path: Path) -> None:
    import numpy as np

    from keizoku.monitoring.log import PredictionLog
    from keizoku.monitoring.reference import load_reference
    from keizoku.prediction import Prediction

    with trained_project(tmp_path) as root:
        home = root / ".keizoku"
        cal = load_reference(f"{MODEL}:1").calibration
        assert cal is not None
        scores = np.random.default_rng(0).uniform(0.4, 1.0, 200)
        for half in (scores[:100], scores[100:]):  # two segments of one hour
            log = PredictionLog(root=home, flush_interval_s=3600)
            for i, s in enumerate(half):
                pred = Prediction("Adelie", {"Adelie": float(s)}, float(s), 1, "champion",
                                  f"e{s}-{i}", None)  # fmt: skip
                log.append(pred, ts=START + i, model=MODEL, inputs={}, latency_ms=1.0)
            log.close()
            buckets.wait_folded()
        points = buckets.estimate_series(MODEL, 1, buckets.HOUR, 0, home)
    assert [(p.n, p.metric) for p in points] == [(200, "accuracy")]
    assert points[0].value is not None
    assert abs(points[0].value - float(cal.expected(scores).clip(0, 1).mean())) < 1e-9
