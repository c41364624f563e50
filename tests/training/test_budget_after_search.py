"""The work after the search fits what the budget has left (issue 12: the whole command
within ``--budget``): the learning curve's trees are capped even for a bag's members, the
evidence's capped steps get the time left, and boosted folds stop early enough to predict
their validation rows by the deadline."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from keizoku.evaluation.evidence import STEP_BUDGET_S, build_evidence, step_budget
from keizoku.evaluation.learning import _capped, learning_curve, rounds_cap
from keizoku.project import REGISTER_PER_MB_S, evidence_time_left, model_size_mb
from keizoku.training.context import TrainingContext, TrainingData
from keizoku.training.cv import (
    HGB_CHUNK,
    PROBE_AFTER_ROUNDS,
    PROBE_ROWS,
    DeadlineReached,
    _FinishLine,
    fit_fold,
)
from keizoku.training.search import SearchResult
from training_support import fold_inputs, labelled, searched


@pytest.fixture(scope="module")
def iris() -> tuple[TrainingData, SearchResult]:
    frame = labelled(load_iris(as_frame=True), "species", ["setosa", "versicolor", "virginica"])
    return searched(frame, "species", models=["lightgbm"], max_trials=2)


def test_round_cap_counts_one_tree_per_class_per_round() -> None:
    assert rounds_cap("lightgbm", 2) == 600  # binary: one tree a round
    assert rounds_cap("lightgbm", 26) == 600 // 26
    assert rounds_cap("xgboost", 100) == 20  # never fewer than 20 rounds
    assert rounds_cap("catboost", 26) == 600  # one multi-output tree a round
    assert rounds_cap("random_forest", 26) is None


def test_a_member_without_a_round_count_is_capped_too() -> None:
    """A bag's fold models carry no n_estimators: their family's default is 2,000 rounds."""
    assert _capped({"learning_rate": 0.1}, "lightgbm", 26)["n_estimators"] == 23
    assert _capped({"n_estimators": 10}, "xgboost", 3)["n_estimators"] == 10
    assert "n_estimators" not in _capped({"C": 1.0}, "linear", 3)


def test_learning_curve_with_no_time_left_fits_one_point(iris) -> None:  # type: ignore[no-untyped-def]
    data, result = iris
    curve = learning_curve(result.model, data.frame, data.y, result.metric, budget_s=0.0)
    assert len(curve["points"]) == 1 and curve["complete"] is False
    assert curve["points"][0]["valid"] is not None
    full = learning_curve(result.model, data.frame, data.y, result.metric, budget_s=60.0)
    assert full["complete"] is True and len(full["points"]) == 5


def test_step_budget_is_a_share_of_what_is_left(iris) -> None:  # type: ignore[no-untyped-def]
    data, result = iris
    assert step_budget(TrainingContext.build("p", data, result)) == STEP_BUDGET_S
    assert step_budget(TrainingContext.build("p", data, result, evidence_s=1.0)) == 0.5
    assert step_budget(TrainingContext.build("p", data, result, evidence_s=-3.0)) == 0.0
    assert step_budget(TrainingContext.build("p", data, result, evidence_s=99.0)) == STEP_BUDGET_S


def test_evidence_with_no_time_left_still_writes_every_file(iris, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, result = iris
    ctx = TrainingContext.build("p", data, result, evidence_s=0.0)
    paths = build_evidence(ctx, tmp_path)
    evaluation = json.loads(paths["evaluation"].read_text())
    assert evaluation["evidence_step_s"] == 0.0
    assert len(evaluation["learning_curve"]["points"]) == 1
    importance = json.loads(paths["importance"].read_text())
    assert importance["members"] and all(0 < m["rows"] <= 5 for m in importance["members"])
    assert paths["model_card"].read_text().strip()


def test_a_bigger_model_leaves_less_time_for_evidence(iris) -> None:  # type: ignore[no-untyped-def]
    data, result = iris
    size = model_size_mb(result)
    assert size > 0
    board = result.leaderboard.copy()
    board.loc[board["chosen"] > 0, "size_mb"] += 100.0
    bigger = dataclasses.replace(result, leaderboard=board)
    folds = result.model.info["folds"] if result.model.info["bagged"] else 1
    added = 100.0 * (board["chosen"] > 0).sum() * folds
    assert model_size_mb(bigger) == pytest.approx(size + added)
    end = time.monotonic() + 60
    small_left = evidence_time_left(end, result, 150, 4, 1.0, 0.0)
    big_left = evidence_time_left(end, bigger, 150, 4, 1.0, 0.0)
    gap = REGISTER_PER_MB_S * (model_size_mb(bigger) - size)
    assert small_left - big_left == pytest.approx(gap, abs=0.5)
    busy_left = evidence_time_left(end, result, 150, 4, 3.0, 2.0)
    assert busy_left < small_left - 2.0  # the caller's seconds, scaled by contention


def test_finish_line_probes_once_and_stops_before_prediction_would_overrun() -> None:
    valid = np.zeros((PROBE_ROWS * 100, 3))
    calls: list[int] = []

    def predict(rows: np.ndarray) -> None:
        calls.append(len(rows))
        time.sleep(0.05)  # ~0.05 s per 256 rows: 5 s for every row at 20 rounds

    line = _FinishLine(time.monotonic() + 10.0, valid)
    assert not line.passed(PROBE_AFTER_ROUNDS - 1, predict) and calls == []
    assert not line.passed(PROBE_AFTER_ROUNDS, predict)  # ~5 s to predict, 10 s left
    assert calls == [PROBE_ROWS]
    assert line.passed(3 * PROBE_AFTER_ROUNDS, predict)  # ~15 s to predict: stop now
    assert calls == [PROBE_ROWS]  # measured once


def test_a_graceful_fold_cut_by_the_deadline_still_predicts(iris) -> None:  # type: ignore[no-untyped-def]
    """LightGBM and XGBoost folds at a deadline that has passed keep what they built."""
    data, _ = iris
    for name in ("lightgbm", "xgboost"):
        family, enc, X, split = fold_inputs(data, name)
        params = dict(family.defaults)
        fit = fit_fold(
            family, params, "multiclass", 0, enc, X, data.y, split, 3, time.monotonic(), True
        )
        assert fit.pred.shape == (len(split[1]), 3)
        assert np.allclose(fit.pred.sum(axis=1), 1.0)


def test_hist_gradient_boosting_stops_at_the_deadline_in_chunks(iris) -> None:  # type: ignore[no-untyped-def]
    """It takes no callback: it boosts HGB_CHUNK rounds at a time and looks at the clock."""
    data, _ = iris
    family, enc, X, split = fold_inputs(data, "hist_gradient_boosting")
    params = {**family.defaults, "learning_rate": 0.01}  # slow enough to need many chunks

    def fold(deadline: float, graceful: bool):  # type: ignore[no-untyped-def]
        return fit_fold(family, params, "multiclass", 0, enc, X, data.y, split, 3, deadline,
                        graceful)  # fmt: skip

    cut = fold(time.monotonic(), True)
    assert cut.model.n_iter_ == HGB_CHUNK  # one chunk, then the deadline
    assert np.allclose(cut.pred.sum(axis=1), 1.0)
    with pytest.raises(DeadlineReached):
        fold(time.monotonic(), False)
    whole = fold(time.monotonic() + 3600, False)
    assert whole.model.n_iter_ > HGB_CHUNK
    plain = family.make("multiclass", params, 0, enc).fit(X[split[0]], data.y[split[0]])
    assert whole.model.n_iter_ == plain.n_iter_  # the same early stop, in chunks or not
    np.testing.assert_allclose(whole.pred, plain.predict_proba(X[split[1]]), atol=1e-9)
