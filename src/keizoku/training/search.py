"""``run_search``: search model families, ensemble, bag or refit, calibrate.

The search is an Optuna study whose first trials are each family's defaults and
then its zero-shot portfolio (configurations that work well across data sets),
then TPE (``bayes``), random sampling (``random``) or a fixed grid (``grid``).
Every trial is cross-validated on the same folds, boosting models stopping early
on the fold's validation rows; trials that fall behind the median after a fold
are pruned. Candidates that are too slow or too big to serve (``max_latency_ms``,
``max_size_mb``) stay on the leaderboard but cannot be chosen. The chosen
configurations are served either as the bag of their fold models (averaged) or
refitted once on all rows (a refit that scores worse on its own training rows than the
folds did out of fold has diverged, and the trial's last fold model is served instead),
and classifier probabilities are temperature-scaled
when that lowers the out-of-fold log loss. The budget covers all of it; the
seconds of each phase are in ``SearchResult.phases``. A trial's folds are fitted by the
search's executor: in this process, or as Ray tasks with ``train.ray``
(``keizoku.training.executor``); the clock, sampler and pruner stay here either way.

The configuration is the spec's ``train:`` section (:class:`TrainSpec`) as it is.
With ``max_trials`` the search stops after that many finished trials whatever the
clock says, so the same data, spec and seed give the same leaderboard; the budget
stays an upper bound.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keizoku.errors import KeizokuWarning, UserInputError
from keizoku.features.encoder import TabularEncoder
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.cv import (
    DeadlineReached,
    Folds,
    TrialResult,
    make_folds,
    refit_seconds,
    thread_limit,
    with_threads,
)
from keizoku.training.ensemble import greedy_ensemble
from keizoku.training.executor import TrialExecutor, executor_for
from keizoku.training.metrics import Metric, get_metric
from keizoku.training.model import (
    KeizokuModel,
    Member,
    apply_temperature,
    fit_temperature,
    raw_predict,
    serving_mode,
)
from keizoku.training.presets import preset as get_preset
from keizoku.training.zoo import FAMILIES, Family, as_native, families_for, sample_params

__all__ = ["SearchResult", "TrainSpec", "run_search"]

FINISHED = ("ok", "too slow", "too big")  # statuses of trials that ran to the end
# k fold models score one row in more than k times one model's latency (switching models
# loses the CPU caches: 3 LightGBM boosters took 0.70 ms where one, called 3 times, 0.28 ms).
BAG_LATENCY_FACTOR = 1.5


@dataclass
class SearchResult:
    model: KeizokuModel
    trials: list[TrialResult]
    leaderboard: pd.DataFrame
    metric: Metric
    cv_score: float
    cv_std: float
    elapsed_s: float
    oof: np.ndarray
    oof_rows: np.ndarray | None = None  # when set, ``oof`` covers only these training rows
    max_trials: int | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, in order


Callback = Callable[[TrialResult, float], None]


def _check_config(cfg: TrainSpec) -> dict[str, Any]:
    if cfg.budget < 5:
        raise UserInputError(
            f"train.budget {cfg.budget:g}s is too short: give at least 5s (--budget 5s)."
        )
    return get_preset(cfg.preset)


class _Search:
    """State of one search: folds, budget, trials so far."""

    def __init__(
        self,
        data: TrainingData,
        cfg: TrainSpec,
        warm_start: Sequence[Mapping[str, Any]],
        on_trial: Callback | None,
        executor: TrialExecutor | None = None,
    ) -> None:
        preset = _check_config(cfg)
        # Where folds are fitted: here, or on the Ray cluster of train.ray (decision 23).
        self.evaluate = executor or executor_for(cfg.ray)
        frame, y, schema = data.frame, data.y, data.schema
        # A preset's latency limit is a preference; a user's --max-latency-ms is a rule.
        # With max_trials the preference is dropped: latency depends on the machine's speed.
        self.soft_latency = (
            cfg.max_latency_ms is None
            and preset.get("max_latency_ms") is not None
            and cfg.max_trials is None
        )
        if self.soft_latency:
            cfg = cfg.model_copy(update={"max_latency_ms": preset["max_latency_ms"]})
        self.cfg = cfg
        self.warm_start = list(warm_start)
        self.task = str(schema.task)
        self.metric = get_metric(cfg.metric, schema.task)  # type: ignore[arg-type]
        self.n_classes = len(schema.classes or []) if self.task != "regression" else 1
        n = len(frame)
        k = cfg.folds or preset["folds"]
        if n > 20_000:
            k = min(k, 3)
        self.k = k
        exclude = cfg.exclude_models
        if cfg.models:  # the user's choice, as given
            self.families = families_for(cfg.models, n, exclude)
        else:  # the preset's, among those that suit the data size and are installed
            among = preset["families"]
            chosen = families_for(None, n, exclude)
            self.families = [f for f in chosen if among is None or f.name in among]
            if not self.families:  # the preset's own families were all excluded
                self.families = chosen
        self.pool = preset["ensemble_candidates"]
        self.preset = preset
        self.folds = Folds(
            make_folds(y, self.task, k, cfg.seed, schema.classes), frame, y, schema.features
        )
        self.start = time.monotonic()
        self.end = self.start + cfg.budget
        self.trials: list[TrialResult] = []
        self.on_trial = on_trial

    def bag_fits(self, trials: Sequence[TrialResult]) -> bool:
        """Whether ``trials`` may be served as bags of their fold models: the preset bags,
        every fold model was kept, and k models per trial meet the latency limit."""
        if not self.preset.get("bag") or not trials:
            return False
        if any(len(t.fold_models) != len(t.fold_scores) or not t.fold_models for t in trials):
            return False
        limit = self.cfg.max_latency_ms
        cost = sum(BAG_LATENCY_FACTOR * len(t.fold_models) * t.latency_ms for t in trials)
        return limit is None or cost <= limit

    def refit_reserve(self) -> float:
        ok = [t for t in self.trials if t.status == "ok"]
        if not ok:
            return 0.05 * self.cfg.budget
        best = sorted(ok, key=lambda t: t.mean, reverse=True)[: min(3, len(ok))]
        if self.bag_fits(best[:1]):  # served as a bag: nothing to refit
            return 0.03 * self.cfg.budget
        per_fit = sum(refit_seconds(t, self.k) for t in best)
        return max(0.05 * self.cfg.budget, per_fit + 1.0)

    def finished(self) -> int:
        return sum(t.status in FINISHED for t in self.trials)

    def done(self) -> bool:
        """Out of time, or ``max_trials`` finished (or ten times as many attempted)."""
        cap = self.cfg.max_trials
        if cap is not None and (self.finished() >= cap or len(self.trials) >= 10 * cap):
            return True
        return self.time_left() <= 0

    def time_left(self) -> float:
        if not any(t.status in FINISHED for t in self.trials):
            return max(self.end - time.monotonic(), 0.1)  # the first trial always runs
        return self.end - self.refit_reserve() - time.monotonic()

    def run_trial(self, family: Family, params: dict[str, Any], report: Any = None) -> TrialResult:
        number = len(self.trials)
        deadline = self.end - self.refit_reserve()
        # Until one candidate has finished, a trial stops gracefully at the deadline
        # (fewer folds, fewer boosting rounds) so a slow machine still gets a model.
        graceful = not any(t.status in FINISHED for t in self.trials)
        try:
            res = self.evaluate(
                number,
                family,
                params,
                self.folds,
                self.task,
                self.metric,
                self.n_classes,
                self.cfg.seed,
                deadline,
                report,
                graceful,
            )
            self._apply_limits(res)
        except DeadlineReached:
            res = TrialResult(number, family.name, params, status="out of time")
        except Exception as exc:  # noqa: BLE001 - a failing candidate must not end the search
            import optuna

            if isinstance(exc, optuna.TrialPruned):
                res = TrialResult(number, family.name, params, status="pruned")
                self._record(res)
                raise
            res = TrialResult(number, family.name, params, status="failed", error=str(exc)[:200])
        self._record(res)
        return res

    def _record(self, res: TrialResult) -> None:
        self.trials.append(res)
        # Keep fold models (to serve as a bag, or when there is no time to refit) for the
        # top trials only.
        ranked = sorted(
            (t for t in self.trials if t.fold_models), key=lambda t: t.mean, reverse=True
        )
        for t in ranked[self.pool :]:
            t.fold_models = []
        if self.on_trial is not None:
            self.on_trial(res, time.monotonic() - self.start)

    def _apply_limits(self, res: TrialResult) -> None:
        if self.cfg.max_latency_ms is not None and res.latency_ms > self.cfg.max_latency_ms:
            res.status = "too slow"
        elif self.cfg.max_size_mb is not None and res.size_mb > self.cfg.max_size_mb:
            res.status = "too big"


def _initial_configs(search: _Search) -> list[tuple[Family, dict[str, Any]]]:
    """Warm-start configurations, each family's defaults, then (with the preset's
    ``portfolio``) the families' zero-shot configurations, round-robin; no repeats."""
    configs = []
    for ws in search.warm_start:
        fam = FAMILIES.get(ws.get("family", ""))
        if fam is not None and fam in search.families:
            configs.append((fam, {**fam.defaults, **ws.get("params", {})}))
    configs += [(fam, dict(fam.defaults)) for fam in search.families]
    if search.preset.get("portfolio"):
        for i in range(max(len(f.portfolio) for f in search.families)):
            extra = [f for f in search.families if i < len(f.portfolio)]
            configs += [(f, {**f.defaults, **f.portfolio[i]}) for f in extra]
    unique: dict[str, tuple[Family, dict[str, Any]]] = {}
    for fam, params in configs:
        unique.setdefault(_config_key(fam.name, params), (fam, params))
    return list(unique.values())


def _config_key(family: str, params: Mapping[str, Any]) -> str:
    return f"{family}{sorted(as_native(dict(params)).items())}"


def _run_grid(search: _Search) -> None:
    grids = [[(fam, p) for p in fam.grid_configs()] for fam in search.families]
    order = _initial_configs(search)
    for i in range(max(len(g) for g in grids)):
        order += [g[i] for g in grids if i < len(g)]
    for fam, params in order:
        if search.done():
            break
        search.run_trial(fam, params)


def _run_optuna(search: _Search) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seed = search.cfg.seed
    if search.cfg.search == "random":
        sampler: Any = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=len(search.families) + 4
        )
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=len(search.families) + 2, n_warmup_steps=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    names = [f.name for f in search.families]
    for fam, params in _initial_configs(search):
        study.enqueue_trial(
            {
                "model": fam.name,
                **{f"{fam.name}.{k}": v for k, v in params.items() if k in fam.space},
            }
        )

    def objective(trial: optuna.Trial) -> float:
        fam = FAMILIES[trial.suggest_categorical("model", names)]
        params = {**fam.defaults, **sample_params(fam, trial)}

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        res = search.run_trial(fam, params, report)
        if res.status not in ("ok", "too slow", "too big"):
            raise optuna.TrialPruned()
        return res.mean

    def stop(study: optuna.Study, _trial: Any) -> None:
        if search.done():
            study.stop()

    study.optimize(objective, timeout=max(search.time_left(), 0.1), callbacks=[stop], catch=())


def _refit(
    search: _Search, frame: pd.DataFrame, y: np.ndarray, trial: TrialResult, weight: float
) -> Member:
    fam = FAMILIES[trial.family]
    params = dict(trial.params)
    if trial.best_iterations:
        params["n_estimators"] = max(10, int(math.ceil(np.mean(trial.best_iterations) * 1.1)))
    enc = TabularEncoder(search.folds.columns, mode=fam.mode).fit(frame)
    est = with_threads(fam.make(search.task, params, search.cfg.seed, enc), len(frame))
    with warnings.catch_warnings(), thread_limit(len(frame)):
        warnings.simplefilter("ignore")
        est.fit(enc.transform(frame), y)
    return Member(fam.name, as_native(params), enc, serving_mode(est), weight)


DIVERGENCE_ROWS = 2000  # training rows a refit is checked on


def refit_diverged(
    member: Member,
    trial: TrialResult,
    frame: pd.DataFrame,
    y: np.ndarray,
    metric: Metric,
    task: str,
) -> bool:
    """True when ``member``, refitted on all rows, scores worse on a sample of those very
    rows than ``trial``'s folds did on rows they never saw: it diverged. LightGBM's
    multiclass boosting without a validation set can blow up (krkopt: out-of-fold log loss
    0.50, the refit 30 on its own rows); the folds' early stopping never saw it."""
    rows = np.random.default_rng(0).permutation(len(frame))[:DIVERGENCE_ROWS]
    pred = raw_predict(member.estimator, member.encoder.transform(frame.iloc[rows]), task)
    try:
        in_sample = float(metric.oriented(y[rows], pred))
    except ValueError:  # a score undefined on this sample (one class): nothing to compare
        return False
    slack = max(2 * trial.std, 0.02 * abs(trial.mean), 1e-3)
    return not np.isfinite(in_sample) or in_sample < trial.mean - slack


def _refit_or_fold(
    search: _Search, frame: pd.DataFrame, y: np.ndarray, trial: TrialResult, weight: float
) -> tuple[list[Member], bool]:
    """The refitted member, or (it diverged) the trial's last fold model; True if refitted."""
    member = _refit(search, frame, y, trial, weight)
    if not trial.fold_models:  # nothing to serve instead: no need to look
        return [member], True
    if not refit_diverged(member, trial, frame, y, search.metric, search.task):
        return [member], True
    warnings.warn(
        f"The {trial.family} model refitted on all {len(frame)} rows scored worse on its "
        "own training rows than its folds did out of fold (it diverged); serving its last "
        "fold's model instead.",
        KeizokuWarning,
        stacklevel=2,
    )
    return _fold_members(trial, weight, bag=False), False


def _fold_members(trial: TrialResult, weight: float, bag: bool) -> list[Member]:
    """The trial's fold models behind its one encoder: all of them (a bag, each with the
    trial's weight, so the bag is their average) or only the last fold's."""
    models = trial.fold_models if bag else trial.fold_models[-1:]
    assert trial.encoder is not None
    params = as_native(trial.params)
    return [Member(trial.family, params, trial.encoder, serving_mode(m), weight) for m in models]


def _choose(search: _Search) -> tuple[dict[int, int], float, np.ndarray]:
    ok = sorted((t for t in search.trials if t.status == "ok"), key=lambda t: t.mean, reverse=True)
    if not ok and search.soft_latency:
        slow = [t for t in search.trials if t.status == "too slow"]
        if slow:
            fastest = min(slow, key=lambda t: t.latency_ms)
            warnings.warn(
                f"No candidate met the preset's {search.cfg.max_latency_ms:g} ms/row latency "
                f"target on this machine; keeping the fastest ({fastest.family}, "
                f"{fastest.latency_ms:.2f} ms/row). Set --max-latency-ms to make it a rule.",
                KeizokuWarning,
                stacklevel=2,
            )
            fastest.status = "ok"
            ok = [fastest]
    if not ok:
        reasons = sorted({f"{t.family}: {t.status} {t.error}".strip() for t in search.trials})
        raise UserInputError(
            "No candidate finished within the budget and limits "
            f"({'; '.join(reasons) or 'no trial ran'}). Raise --budget, or relax "
            "--max-latency-ms / --max-size-mb."
        )
    best = ok[0]
    y = search.folds.y
    chosen = {best.number: 1}
    if best.partial:  # only part of the rows were validated: no ensemble on partial OOF
        return chosen, best.mean, best.oof  # type: ignore[return-value]
    single = search.metric.oriented(y, best.oof)  # type: ignore[arg-type]
    score, oof = single, best.oof
    if search.cfg.ensemble and len(ok) > 1:
        pool = _distinct([t for t in ok if not t.partial])[: search.pool]
        weights, ens_score = greedy_ensemble(pool, y, search.metric)
        members = [t for t in pool if t.number in weights]
        latency = sum(t.latency_ms for t in members)
        size = sum(t.size_mb for t in members)
        within = (search.cfg.max_latency_ms is None or latency <= search.cfg.max_latency_ms) and (
            search.cfg.max_size_mb is None or size <= search.cfg.max_size_mb
        )
        if len(weights) > 1 and ens_score > single + 1e-6 * max(1.0, abs(single)) and within:
            chosen, score = weights, ens_score
            total = sum(weights.values())
            oof = np.zeros_like(best.oof)
            for t in members:
                oof = oof + np.asarray(t.oof) * (weights[t.number] / total)
    return chosen, score, oof  # type: ignore[return-value]


def _distinct(trials: list[TrialResult]) -> list[TrialResult]:
    seen: set[str] = set()
    out = []
    for t in trials:
        key = _config_key(t.family, t.params)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def leaderboard(search: _Search, chosen: dict[int, int]) -> pd.DataFrame:
    sign = 1 if search.metric.greater_is_better else -1
    rows = []
    for t in search.trials:
        rows.append(
            {
                "trial": t.number,
                "model": t.family,
                "score": sign * t.mean if t.fold_scores else float("nan"),
                "std": t.std if t.fold_scores else float("nan"),
                "fit_time_s": t.fit_time_s,
                "latency_ms": t.latency_ms,
                "size_mb": t.size_mb,
                "status": t.status,
                "chosen": chosen.get(t.number, 0),
                "params": str(as_native(t.params)),
            }
        )
    board = pd.DataFrame(rows)
    if not board.empty:
        board = board.sort_values(
            "score", ascending=not search.metric.greater_is_better, na_position="last"
        ).reset_index(drop=True)
    return board


def run_search(
    data: TrainingData,
    cfg: TrainSpec,
    *,
    warm_start: Sequence[Mapping[str, Any]] = (),
    on_trial: Callback | None = None,
    executor: TrialExecutor | None = None,
) -> SearchResult:
    """Search, ensemble and refit a model for the target of ``data``.

    ``warm_start``: member configurations (``{"family", "params"}``) tried first, e.g.
    the champion's when retraining. ``executor``: where each trial's folds are fitted
    (default: ``train.ray``'s cluster when set, else this process).
    """
    frame, y = data.frame, data.y
    with warnings.catch_warnings():
        warnings.simplefilter("always", KeizokuWarning)
        search = _Search(data, cfg, warm_start, on_trial, executor)
    clock = _Clock()
    if cfg.search == "grid":
        _run_grid(search)
    else:
        _run_optuna(search)
    clock.lap("search")
    chosen, score, oof = _choose(search)
    clock.lap("ensemble")
    by_number = {t.number: t for t in search.trials}
    picked = [(by_number[n], float(w)) for n, w in chosen.items()]
    bag = search.bag_fits([t for t, _ in picked])
    have_fold_models = all(t.fold_models for t, _ in picked)
    refit_time = sum(refit_seconds(t, search.k) for t, _ in picked)
    refit = not bag and (not have_fold_models or time.monotonic() + refit_time <= search.end)
    if refit:
        refits = [_refit_or_fold(search, frame, y, t, w) for t, w in picked]
        members = [m for found, _ in refits for m in found]
        refit = all(done for _, done in refits)
        clock.lap("refit")
    else:  # the bag of fold models, or (no time to refit) the last fold's model
        members = [m for t, w in picked for m in _fold_members(t, w, bag)]
        clock.lap("bag" if bag else "refit")
    model = KeizokuModel(
        schema=data.schema,
        task=search.task,
        members=members,
        classes=data.codec.classes,
        metric=search.metric.name,
    )
    partial = any(t.partial for t, _ in picked)
    # Not a bag: its average is already softer than the fold models whose OOF would fit T.
    if search.task != "regression" and search.preset.get("calibrate") and not (partial or bag):
        model.temperature = fit_temperature(y, oof)
        if model.temperature != 1.0:
            oof = apply_temperature(oof, model.temperature)
            score = search.metric.oriented(y, oof)
        clock.lap("calibrate")
    sign = 1 if search.metric.greater_is_better else -1
    stds = [by_number[n].std for n in chosen]
    board = leaderboard(search, chosen)
    model.info = {
        "cv_score": sign * score,
        "folds": search.k,
        "n_trials": len(search.trials),
        # False only for the fallback (the last fold's model): a bag's folds cover all rows.
        "refit_on_all_rows": refit or bag,
        "bagged": bag,
        "temperature": model.temperature,
        "partial_cv": partial,
    }
    oof_rows = next((t.oof_rows for t, _ in picked if t.partial), None)
    return SearchResult(
        model,
        search.trials,
        board,
        search.metric,
        sign * score,
        float(np.mean(stds)),
        time.monotonic() - search.start,
        oof,
        oof_rows,
        cfg.max_trials,
        clock.phases,
    )


class _Clock:
    """Seconds spent in each phase of ``run_search``."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now
