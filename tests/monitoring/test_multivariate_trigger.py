"""The loop's drift trigger fires on a change in how features move together that leaves
every marginal unchanged: only the domain classifier sees it (real registry, real log,
``lifecycle.retrain.check_triggers`` as the loop calls it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kzsupport import log_prediction
from rollout_support import MODEL, frame, trained_project

pytestmark = pytest.mark.slow

ROWS = 3000


def _log(rows: pd.DataFrame) -> None:
    from keizoku.monitoring.log import PredictionLog

    now = time.time()
    with PredictionLog() as log:
        for i, rec in enumerate(rows.to_dict("records")):
            log_prediction(
                log, request_id=f"m{i}", ts=now - 3 * 3600 + i, model=MODEL, version=1,
                variant="champion", inputs={k: (None if v != v else v) for k, v in rec.items()},
                prediction="Gentoo",
            )  # fmt: skip


def _resampled(joint: bool) -> pd.DataFrame:
    """ROWS penguins drawn from the training rows: whole rows (``joint``), or each column
    drawn on its own, which keeps every marginal and breaks every correlation (body mass
    and flipper length: r = 0.87 in the training rows)."""
    features = frame().drop(columns="species")
    if joint:
        return features.sample(ROWS, replace=True, random_state=0).reset_index(drop=True)
    return pd.DataFrame({
        c: features[c].sample(ROWS, replace=True, random_state=i).to_numpy()
        for i, c in enumerate(features.columns)
    })  # fmt: skip


@pytest.fixture(params=[False, True], ids=["correlation-broken", "joint-kept"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bool]:
    with trained_project(tmp_path / "proj"):
        _log(_resampled(joint=request.param))
        yield bool(request.param)


def test_a_correlation_shift_with_unchanged_marginals_fires_the_drift_trigger(
    project: bool,
) -> None:
    from keizoku.lifecycle.policy import parse_policy
    from keizoku.lifecycle.retrain import TriggerKind, check_triggers
    from keizoku.monitoring.drift import DriftConfig
    from keizoku.monitoring.monitor import monitor

    joint = project
    cfg = DriftConfig()
    report = monitor(MODEL, version=1, since_s=86400, config=cfg)
    assert report.drifted == []  # no per-feature test sees either stream move
    multi = report.multivariate
    assert multi is not None and multi.skipped is None
    assert multi.n_cur == ROWS and multi.n_ref == len(frame())
    fired = check_triggers(MODEL, parse_policy(None), 1, drift=cfg)
    drift = [t for t in fired if t.kind == TriggerKind.DRIFT]
    if joint:  # whole rows of the training population: nothing to see
        assert not multi.drifted and drift == [], (multi.reason, drift)
        return
    assert multi.drifted and multi.auc >= cfg.auc_threshold, multi.reason
    assert len(drift) == 1
    assert drift[0].sentence.startswith("drift in the joint distribution")
    assert f"AUC {multi.auc:.3f}" in drift[0].sentence
    # with the multivariate check switched off in the spec, the loop stays quiet
    off = DriftConfig(multivariate=False)
    assert not [t for t in check_triggers(MODEL, parse_policy(None), 1, drift=off)
                if t.kind == TriggerKind.DRIFT]  # fmt: skip
