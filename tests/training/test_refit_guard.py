"""A refit on all rows that diverged is not served (krkopt, s9: LightGBM's multiclass
refit reached log loss 30 on its own training rows while its folds scored 0.50 out of
fold, and the registered model was right on 19 % of the test rows)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_wine

from keizoku.training.context import TrainingData
from keizoku.training.model import Member
from keizoku.training.search import SearchResult, refit_diverged
from training_support import labelled, searched


@pytest.fixture(scope="module")
def wine() -> tuple[TrainingData, SearchResult]:
    frame = labelled(load_wine(as_frame=True), "cultivar", ["a", "b", "c"])
    # "fast" refits on all rows (no bag): the path the guard protects
    return searched(frame, "cultivar", models=["lightgbm"], max_trials=1, preset="fast")


def test_a_healthy_refit_is_served(wine) -> None:  # type: ignore[no-untyped-def]
    data, result = wine
    assert result.model.info["refit_on_all_rows"] is True
    member, trial = result.model.members[0], result.trials[0]
    assert not refit_diverged(member, trial, data.frame, data.y, result.metric, data.task)


def test_a_refit_worse_on_its_own_rows_than_out_of_fold_is_caught(wine) -> None:  # type: ignore[no-untyped-def]
    data, result = wine
    good, trial = result.model.members[0], result.trials[0]
    X = good.encoder.transform(data.frame)
    shuffled = np.random.default_rng(1).permutation(data.y)  # fits noise: wrong on its rows
    est = lgb.LGBMClassifier(n_estimators=50, verbose=-1).fit(X, shuffled)
    broken = Member(good.family, good.params, good.encoder, est, 1.0)
    assert refit_diverged(broken, trial, data.frame, data.y, result.metric, data.task)
