"""How a fitted model is asked for predictions: on one thread for a few rows, same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_info, threadpool_limits

from keizoku.training.model import SMALL_BATCH, raw_predict


def _openmp_threads() -> set[int]:
    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "openmp"}


class HistGradientBoostingSeen(HistGradientBoostingClassifier):  # type: ignore[misc]
    """scikit-learn's model, noting the OpenMP threads each prediction may use."""

    seen: list[set[int]] = []

    def predict_proba(self, X: Any) -> Any:
        self.seen.append(_openmp_threads())
        return super().predict_proba(X)


def test_hist_gradient_boosting_scores_a_few_rows_on_one_thread_with_the_same_numbers() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(SMALL_BATCH + 200, 6))
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(int)
    est = HistGradientBoostingSeen(max_iter=40, early_stopping=False).fit(X, y)
    with threadpool_limits(2, user_api="openmp"):  # as on a 2-core machine (the tests run on 1)
        few = raw_predict(est, X[:20], "binary")
        assert est.seen[-1] == {1}
        assert _openmp_threads() == {2}  # the setting is restored
        many = raw_predict(est, X, "binary")  # a large batch keeps every thread
        assert est.seen[-1] == {2}
        unlimited = HistGradientBoostingClassifier.predict_proba(est, X[:20])
    np.testing.assert_array_equal(few, unlimited)
    np.testing.assert_array_equal(many[:20], few)
