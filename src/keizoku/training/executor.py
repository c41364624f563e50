"""Where a trial's folds are fitted: here (``cv.evaluate_config`` itself) or on a Ray cluster.

The search (:mod:`keizoku.training.search`) asks its executor to cross-validate one
configuration at a time, in the order the sampler proposes them, and keeps the budget
clock, the sampler and the pruner itself. ``cv.evaluate_config`` is the search as it always
ran (``evaluate_config``); the Ray executor (:mod:`keizoku.distributed.ray_executor`,
the only module that imports ray for training) fits the same configuration's folds as
Ray tasks with the same pure function (``cv.fit_fold``), so the same seed and
``max_trials`` give the same leaderboard (docs/decisions/0023-ray.md).
"""

from __future__ import annotations

from typing import Any, Protocol

from keizoku.training.cv import Folds, TrialResult, evaluate_config
from keizoku.training.metrics import Metric
from keizoku.training.zoo import Family

__all__ = ["TrialExecutor", "executor_for"]


class TrialExecutor(Protocol):
    """Cross-validates one configuration; the signature of ``cv.evaluate_config``."""

    def __call__(
        self,
        number: int,
        family: Family,
        params: dict[str, Any],
        folds: Folds,
        task: str,
        metric: Metric,
        n_classes: int,
        seed: int,
        deadline: float,
        report: Any = None,
        graceful: bool = False,
    ) -> TrialResult: ...


def executor_for(ray_address: str | None) -> TrialExecutor:
    """The local executor, or (``train.ray`` / ``--ray``) one on the Ray cluster at
    ``ray_address``: MissingExtraError (exit 7) without the ``ray`` extra, UserInputError
    (exit 2) when no cluster answers there."""
    if not ray_address:
        return evaluate_config  # every fold in this process, one after the other
    from keizoku.distributed.ray_executor import RayExecutor

    return RayExecutor(ray_address)
