"""Cross-validation folds and the evaluation of one configuration on them."""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from keizoku.data.schema import Column
from keizoku.errors import KeizokuWarning
from keizoku.features.encoder import TabularEncoder
from keizoku.training.metrics import Metric
from keizoku.training.model import raw_predict, serving_mode, thread_pools
from keizoku.training.zoo import Family

__all__ = [
    "DeadlineReached",
    "FoldFit",
    "Folds",
    "TrialResult",
    "add_fold",
    "evaluate_config",
    "finish_trial",
    "fit_fold",
    "make_folds",
    "new_oof",
]


class DeadlineReached(Exception):
    """The time budget ran out in the middle of a trial."""


@dataclass
class TrialResult:
    """What one configuration scored on the folds, and what it costs to serve."""

    number: int
    family: str
    params: dict[str, Any]
    fold_scores: list[float] = field(default_factory=list)
    oof: np.ndarray | None = None
    fit_time_s: float = 0.0
    latency_ms: float = float("nan")
    size_mb: float = float("nan")
    best_iterations: list[int] = field(default_factory=list)
    status: str = "ok"
    error: str = ""
    encoder: TabularEncoder | None = None  # fitted on all rows, shared by every fold model
    fold_models: list[Any] = field(default_factory=list)  # one per fold; kept for top trials
    partial: bool = False  # stopped after fewer folds than planned (first trial only)
    oof_rows: np.ndarray | None = None  # for a partial trial: the rows ``oof`` covers
    # neural models: each fold's learning curve, (epoch, train loss, validation loss)
    curves: list[list[tuple[int, float, float | None]]] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores)) if self.fold_scores else float("-inf")

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores)) if len(self.fold_scores) > 1 else 0.0


@dataclass
class Folds:
    """Fold indices plus the encoded matrix per encoder mode.

    The encoder is fitted once on all rows (it learns category lists and scaling, never
    the target), so every fold model reads the same columns and the fold models of a
    configuration can be served together as a bag behind one encoder.
    """

    splits: list[tuple[np.ndarray, np.ndarray]]
    frame: pd.DataFrame
    y: np.ndarray
    columns: list[Column]
    cache: dict[str, tuple[TabularEncoder, np.ndarray]] = field(default_factory=dict)

    def encoded(self, mode: Literal["ordinal", "onehot"]) -> tuple[TabularEncoder, np.ndarray]:
        if mode not in self.cache:
            enc = TabularEncoder(self.columns, mode=mode).fit(self.frame)
            self.cache[mode] = (enc, enc.transform(self.frame))
        return self.cache[mode]


def make_folds(
    y: np.ndarray, task: str, k: int, seed: int, labels: list[Any] | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds, stratified for classification; tiny classes are stratified as one group."""
    n = len(y)
    if task == "regression":
        return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
    strat = y.copy()
    codes, counts = np.unique(y, return_counts=True)
    rare = codes[counts < k]
    if len(rare):
        names = [labels[c] if labels else c for c in rare]
        shown = ", ".join(
            f"'{nm}' ({counts[codes == c][0]} rows)" for nm, c in zip(names, rare, strict=True)
        )
        warnings.warn(
            f"Class(es) {shown} have fewer rows than the {k} folds, so plain stratified "
            "CV cannot hold them in every fold; they are stratified together as one group and "
            "their CV estimates are noisy.",
            KeizokuWarning,
            stacklevel=2,
        )
        strat = np.where(np.isin(y, rare), -1, y)
        if (strat == -1).sum() < k:
            strat = np.where(strat == -1, codes[counts.argmax()], strat)
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), strat))


SMALL_DATA_ROWS = 20_000


def with_threads(estimator: Any, n_rows: int) -> Any:
    """One thread below ``SMALL_DATA_ROWS``: on 2 cores, thread start-up and contention cost
    more than they save on small data (LightGBM ran up to 50x slower on a busy machine)."""
    if n_rows < SMALL_DATA_ROWS:
        params = estimator.get_params()
        if "n_jobs" in params:
            estimator.set_params(n_jobs=1)
        elif "thread_count" in params:  # CatBoost
            estimator.set_params(thread_count=1)
    return estimator


def thread_limit(n_rows: int) -> Any:
    """Limit OpenMP/BLAS threads to one on small data (see ``with_threads``)."""
    from contextlib import nullcontext

    return thread_pools().limit(limits=1) if n_rows < SMALL_DATA_ROWS else nullcontext()


def refit_seconds(trial: TrialResult, k: int) -> float:
    """Estimated time to refit ``trial`` on all rows (one fold's fit x k/(k-1), plus margin)."""
    per_fold = trial.fit_time_s / max(len(trial.fold_scores), 1)
    return 1.3 * per_fold * k / max(k - 1, 1)


def _expand_proba(est: Any, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """A fold may miss a class: put each column of ``proba`` under its class code."""
    classes = getattr(est, "classes_", None)
    if classes is None or proba.shape[1] == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(classes, dtype=int)] = proba
    return full


PROBE_AFTER_ROUNDS = 20
PROBE_ROWS = 256


class _FinishLine:
    """When a boosted fold must stop so that predicting its validation rows ends by ``deadline``.

    Predicting costs time in proportion to the rows and the trees built: a 26-class fold
    cut at the deadline still spent 3.5 s predicting 7,500 rows with every tree it had.
    After ``PROBE_AFTER_ROUNDS`` rounds the cost of predicting ``PROBE_ROWS`` validation
    rows is measured once and scaled to all of them and to the rounds so far.
    """

    def __init__(self, deadline: float, valid: np.ndarray) -> None:
        self.deadline = deadline
        self.valid = valid
        self.per_round_s: float | None = None  # predicting every validation row, per round

    def passed(self, rounds: int, predict: Any) -> bool:
        """True once boosting must stop; ``predict(X)`` scores rows with the trees so far."""
        if self.per_round_s is None and rounds >= PROBE_AFTER_ROUNDS:
            probe = self.valid[:PROBE_ROWS]
            began = time.monotonic()
            predict(probe)
            spent = time.monotonic() - began
            self.per_round_s = spent * len(self.valid) / max(len(probe), 1) / rounds
        predict_s = (self.per_round_s or 0.0) * rounds
        return time.monotonic() + predict_s > self.deadline


HGB_CHUNK = 50  # rounds between two looks at the clock


def _fit_in_chunks(
    est: Any, Xt: np.ndarray, yt: np.ndarray, deadline: float, graceful: bool
) -> None:
    """Fit scikit-learn's HistGradientBoosting ``HGB_CHUNK`` rounds at a time (warm start),
    stopping at the deadline: it takes no callback, and one 11-class fold on a busy machine
    ran 19 s past the search's deadline (vowel, s9). Its own early stopping carries on
    across the chunks (same validation split, same score history)."""
    total = int(est.get_params()["max_iter"])
    est.set_params(warm_start=True)
    rounds = 0
    while rounds < total:
        rounds = min(rounds + HGB_CHUNK, total)
        est.set_params(max_iter=rounds)
        est.fit(Xt, yt)
        if est.n_iter_ < rounds:  # stopped early on its validation split
            break
        if time.monotonic() > deadline and rounds < total:
            if not graceful:
                raise DeadlineReached()
            break  # keep the rounds so far
    est.set_params(warm_start=False)


def _fit(
    family: Family,
    est: Any,
    Xt: np.ndarray,
    yt: np.ndarray,
    Xv: np.ndarray,
    yv: np.ndarray,
    deadline: float,
    graceful: bool = False,
) -> int | None:
    """Fit ``est``; boosting models stop early on the validation fold and at the deadline
    (``graceful``: keep the trees built so far instead of abandoning the fit). LightGBM and
    XGBoost stop early enough to predict the validation rows by the deadline too."""
    if family.name == "lightgbm":
        import lightgbm as lgb

        finish = _FinishLine(deadline, Xv)

        def stop_at_deadline(env: Any) -> None:
            if finish.passed(env.iteration + 1, env.model.predict):
                if not graceful:
                    raise DeadlineReached()
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        est.fit(
            Xt,
            yt,
            eval_set=[(Xv, yv)],
            callbacks=[lgb.early_stopping(50, verbose=False), stop_at_deadline],
        )
        return int(est.best_iteration_ or est.n_estimators)
    if family.name == "xgboost":
        import xgboost as xgb

        finish = _FinishLine(deadline, Xv)

        class Deadline(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                if finish.passed(epoch + 1, model.inplace_predict):
                    if not graceful:
                        raise DeadlineReached()
                    return True  # stop boosting, keep the trees so far
                return False

        est.set_params(early_stopping_rounds=50, callbacks=[Deadline()])
        est.fit(Xt, yt, eval_set=[(Xv, yv)], verbose=False)
        est.set_params(callbacks=None)
        try:
            return int(est.best_iteration + 1)
        except AttributeError:  # stopped before early stopping recorded a best round
            return int(est.get_booster().num_boosted_rounds())
    if family.name == "catboost":

        class CatDeadline:
            def after_iteration(self, info: Any) -> bool:  # False stops boosting
                if time.monotonic() > deadline:
                    if not graceful:
                        raise DeadlineReached()
                    return False
                return True

        est.fit(Xt, yt, eval_set=(Xv, yv), early_stopping_rounds=50, callbacks=[CatDeadline()])
        return int(est.get_best_iteration() + 1)
    if family.name == "hist_gradient_boosting":
        _fit_in_chunks(est, Xt, yt, deadline, graceful)
        return None  # its own early stopping decides a refit's rounds, as before
    if family.name == "torch_mlp":  # epochs stop early on the validation fold's loss

        def epoch_done(epoch: int, train_loss: float, val_loss: float | None) -> bool:
            if time.monotonic() > deadline:
                if not graceful:
                    raise DeadlineReached()
                return True  # keep the best epoch so far
            return False

        est.fit(Xt, yt, eval_set=(Xv, yv), on_epoch=epoch_done)
        return int(est.best_epoch_)
    est.fit(Xt, yt)
    return None


@dataclass
class FoldFit:
    """One fold's fitted model and its predictions on the fold's validation rows."""

    model: Any
    pred: np.ndarray
    best_iteration: int | None = None
    curve: list[tuple[int, float, float | None]] | None = None
    fit_s: float = 0.0


def fit_fold(
    family: Family,
    params: dict[str, Any],
    task: str,
    seed: int,
    enc: TabularEncoder,
    X: np.ndarray,
    y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    deadline: float,
    graceful: bool = False,
) -> FoldFit:
    """Fit one configuration on one fold: a pure function of its arguments (the unit the
    Ray executor ships to a worker, ``keizoku.distributed``)."""
    tr, va = split
    start = time.perf_counter()
    est = with_threads(family.make(task, params, seed, enc), len(tr))
    with warnings.catch_warnings(), thread_limit(len(tr)):
        warnings.simplefilter("ignore")
        best = _fit(family, est, X[tr], y[tr], X[va], y[va], deadline, graceful)
    pred = raw_predict(est, X[va], task)
    if task != "regression":
        pred = _expand_proba(est, pred, n_classes)
    curve = list(est.history_) if getattr(est, "history_", None) else None
    return FoldFit(est, pred, best, curve, time.perf_counter() - start)


def add_fold(
    result: TrialResult, fit: FoldFit, folds: Folds, i: int, oof: np.ndarray, metric: Metric
) -> None:
    """Record fold ``i``'s fit in ``result`` and its predictions in ``oof``."""
    va = folds.splits[i][1]
    result.fold_models.append(fit.model)
    if fit.best_iteration is not None:
        result.best_iterations.append(fit.best_iteration)
    if fit.curve is not None:
        result.curves.append(fit.curve)
    oof[va] = fit.pred
    result.fold_scores.append(metric.oriented(folds.y[va], fit.pred))


def new_oof(n_rows: int, task: str, n_classes: int) -> np.ndarray:
    return np.zeros((n_rows, n_classes)) if task != "regression" else np.zeros(n_rows)


def finish_trial(
    result: TrialResult, folds: Folds, oof: np.ndarray, enc: TabularEncoder, task: str
) -> TrialResult:
    """The trial's out-of-fold predictions (only the folds done, when partial), its shared
    encoder, and its serving cost (measured here, on the machine that runs the search)."""
    if result.partial:
        rows = np.sort(np.concatenate([va for _, va in folds.splits[: len(result.fold_scores)]]))
        result.oof, result.oof_rows = oof[rows], rows
    else:
        result.oof = oof
    result.encoder = enc
    with thread_limit(0):  # a request is scored on one thread
        _measure_serving_cost(result, folds, enc, result.fold_models[-1], task)
    return result


def evaluate_config(
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
    """Cross-validate one configuration; ``report(step, score)`` may prune it.

    ``graceful`` (the search's first trial): at the deadline, boosting keeps the trees built
    so far and cross-validation stops after the folds done, so there is always a model.
    """
    result = TrialResult(number, family.name, dict(params))
    oof = new_oof(len(folds.y), task, n_classes)
    start = time.perf_counter()
    enc, X = folds.encoded(family.mode)
    for i, split in enumerate(folds.splits):
        if time.monotonic() > deadline:
            if graceful and result.fold_scores:
                result.partial = True
                break
            raise DeadlineReached()
        fit = fit_fold(family, params, task, seed, enc, X, folds.y, split, n_classes, deadline,
                       graceful)  # fmt: skip
        add_fold(result, fit, folds, i, oof, metric)
        if report is not None:
            report(i, float(np.mean(result.fold_scores)))
    result.fit_time_s = time.perf_counter() - start
    return finish_trial(result, folds, oof, enc, task)


def _measure_serving_cost(result: TrialResult, folds: Folds, enc: Any, est: Any, task: str) -> None:
    """Single-row latency (encode + predict, lower quartile of repeats) and pickled size."""
    records = folds.frame.iloc[:15].to_dict("records")
    serving_mode(est)
    raw_predict(est, enc.transform_records(records[:1]), task)  # warm-up
    timings = []
    for rec in records:
        t0 = time.perf_counter()
        raw_predict(est, enc.transform_records([rec]), task)
        timings.append(time.perf_counter() - t0)
    # The lower quartile: a busy machine adds noise, never speed.
    result.latency_ms = float(np.percentile(timings, 25)) * 1000
    result.size_mb = len(pickle.dumps((enc, est), protocol=5)) / 1e6
