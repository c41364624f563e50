"""The search's folds as Ray tasks (``keizoku train --ray ADDRESS``).

The driver keeps everything that decides what runs next: the budget clock, the sampler,
the pruner and the order of trials. Only the fitting moves: each fold of the trial at
hand is one task running ``cv.fit_fold``, the same pure function the local search calls,
on the encoded matrix shipped once per search with ``ray.put``. Results are taken as
they finish and recorded in fold order, so the pruner sees what it sees locally and the
same seed and ``max_trials`` give the same leaderboard. A task whose worker dies is run
again by Ray (``MAX_RETRIES``): no fold result is lost. Why folds and not trials:
docs/decisions/0023-ray.md.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from keizoku.distributed.cluster import connect
from keizoku.training.cv import (
    DeadlineReached,
    FoldFit,
    Folds,
    TrialResult,
    add_fold,
    finish_trial,
    fit_fold,
    new_oof,
)
from keizoku.training.metrics import Metric
from keizoku.training.zoo import FAMILIES, Family

__all__ = ["MAX_RETRIES", "RayExecutor"]

MAX_RETRIES = 5  # a fold task whose worker or node dies runs again, up to this many times


def _fold_task(
    family: str,
    params: dict[str, Any],
    task: str,
    seed: int,
    enc: Any,
    X: np.ndarray,
    y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    deadline_epoch: float,
    graceful: bool,
) -> tuple[str, FoldFit | str | None]:
    """One fold on a worker: ("ok", FoldFit), ("late", None) when it starts after the
    deadline, ("deadline", None) when the deadline cut the fit, ("error", message)."""
    # The driver's deadline comes as wall-clock time (monotonic clocks differ per machine).
    left = deadline_epoch - time.time()
    if left <= 0:
        return "late", None
    try:
        fit = fit_fold(FAMILIES[family], params, task, seed, enc, X, y, split, n_classes,
                       time.monotonic() + left, graceful)  # fmt: skip
    except DeadlineReached:
        return "deadline", None
    except Exception as exc:  # noqa: BLE001 - a failing candidate is the search's business
        return "error", str(exc)
    return "ok", fit


class RayExecutor:
    """Cross-validates a configuration with one Ray task per fold (see the module doc)."""

    def __init__(self, address: str) -> None:
        self.ray = connect(address)
        # SPREAD: the folds of a trial go to different nodes, not first to the driver's.
        remote = self.ray.remote(num_cpus=1, max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")
        self.task = remote(_fold_task)
        # per Folds (kept alive, so its id is not reused) and encoder mode: refs shipped once
        self.shipped: dict[tuple[int, str], tuple[Folds, Any, Any, Any, list[Any]]] = {}

    def _refs(self, folds: Folds, mode: Any) -> tuple[Any, Any, Any, list[Any]]:
        key = (id(folds), str(mode))
        if key not in self.shipped:
            enc, X = folds.encoded(mode)
            put = self.ray.put
            splits = [put(s) for s in folds.splits]
            self.shipped[key] = (folds, put(enc), put(X), put(folds.y), splits)
        _, enc_ref, x_ref, y_ref, splits = self.shipped[key]
        return enc_ref, x_ref, y_ref, splits

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
    ) -> TrialResult:
        ray = self.ray
        if time.monotonic() > deadline:
            raise DeadlineReached()
        result = TrialResult(number, family.name, dict(params))
        oof = new_oof(len(folds.y), task, n_classes)
        enc, _ = folds.encoded(family.mode)
        enc_ref, x_ref, y_ref, splits = self._refs(folds, family.mode)
        deadline_epoch = time.time() + (deadline - time.monotonic())
        pending = [
            self.task.remote(
                family.name,
                params,
                task,
                seed,
                enc_ref,
                x_ref,
                y_ref,
                split,
                n_classes,
                deadline_epoch,
                graceful,
            )  # fmt: skip
            for split in splits
        ]
        fold_of = {ref: i for i, ref in enumerate(pending)}
        done: dict[int, tuple[str, Any]] = {}
        try:
            while pending and not result.partial:
                ready, pending = ray.wait(pending, num_returns=1)
                done.update((fold_of[ref], ray.get(ref)) for ref in ready)
                # In fold order, as the local search records and reports them.
                while len(result.fold_scores) in done and not result.partial:
                    i = len(result.fold_scores)
                    kind, value = done.pop(i)
                    if kind == "error":
                        raise RuntimeError(value)
                    if kind == "late" and graceful and result.fold_scores:
                        result.partial = True  # as locally: keep the folds done
                        break
                    if kind != "ok":
                        raise DeadlineReached()
                    add_fold(result, value, folds, i, oof, metric)
                    result.fit_time_s += value.fit_s
                    if report is not None:
                        report(i, float(np.mean(result.fold_scores)))
        finally:
            for ref in pending:
                ray.cancel(ref)
        return finish_trial(result, folds, oof, enc, task)
