"""Online A/B statistics from logged outcomes, valid under repeated looks.

An A/B test is an *experiment* (``keizoku.lifecycle.experiments``): two versions and a
start time. Its arms are the logged, labelled predictions **of those two versions since
the experiment started** (and until it ended) — never pooled by alias name, so a moved
alias or traffic from before the split cannot leak in. Control rows are the champion's
answered requests; treatment rows are the treatment version's answered requests (its
shadow predictions for a ``shadow`` experiment). Without any experiment the aliases
are resolved to versions now and all their labelled traffic is used (said in ``why``).

Outcomes per arm come from the prediction log joined with feedback: ``accuracy``
(prediction == label, a rate), ``label`` (the mean of the label itself, e.g. conversion 0/1), or for
regression ``abs_error`` / ``squared_error`` (lower is better).

The decision uses a **mixture sequential probability ratio test (mSPRT)**
with a normal mixing distribution N(0, τ²) on the difference of means
(Johari, Pekelis & Walsh, "Always valid inference", 2017). Its p-value
``1 / max_k Λ_k`` (maximum over every prefix of the data, in arrival order) and
its confidence sequence stay valid however often anyone looks, so ``keizoku
abtest`` can be run every hour and stop as soon as it says so. The variance is
the two-proportion (Bernoulli) variance for rates and Welch's unpooled variance
for means. The fixed-horizon two-proportion z / Welch t p-values are shown for
reference only; they are not valid under repeated looks.

Decision: ``promote`` when the challenger is significantly better (always-valid
p < alpha, effect > 0), ``keep`` when it is significantly worse, or when the
confidence interval lies inside ±``mde`` (no difference worth switching for),
otherwise ``continue`` (with the sample size still needed, a fixed-horizon
estimate for power 0.8 at the minimum detectable effect ``mde``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ABResult", "msprt", "ab_decision", "abtest", "outcomes", "METHOD"]

METHOD = "mSPRT (always-valid, normal mixture)"


def msprt(
    xa: np.ndarray, xb: np.ndarray, tau: float, alpha: float
) -> tuple[float, float, float, float]:
    """(effect b−a, always-valid p-value, CI low, CI high) for arrival-ordered samples.

    ``Λ_k`` is evaluated after every observation pair in arrival order (samples
    are aligned by position; the shorter arm bounds k) and the p-value is
    ``min(1, 1/max Λ_k)``.
    """
    xa, xb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    effect = float(xb.mean() - xa.mean()) if len(xa) and len(xb) else 0.0
    if len(xa) < MIN_PER_ARM or len(xb) < MIN_PER_ARM:
        return effect, 1.0, -math.inf, math.inf
    tau2 = tau * tau
    log_lambda_max = -math.inf
    ca, cb = _cum_stats(xa), _cum_stats(xb)
    steps = _checkpoints(len(xa), len(xb))
    for na, nb in steps:
        ma, va = ca[0][na - 1], ca[1][na - 1]
        mb, vb = cb[0][nb - 1], cb[1][nb - 1]
        v = max(va / na + vb / nb, 1e-12)
        theta = mb - ma
        log_l = 0.5 * math.log(v / (v + tau2)) + tau2 * theta * theta / (2 * v * (v + tau2))
        log_lambda_max = max(log_lambda_max, log_l)
    p = min(1.0, math.exp(-log_lambda_max))
    va_all = ca[1][-1] / len(xa) + cb[1][-1] / len(xb)
    v = max(va_all, 1e-12)
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    return effect, p, effect - half, effect + half


def _cum_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(1, len(x) + 1)
    mean = np.cumsum(x) / n
    var = np.maximum(np.cumsum(x * x) / n - mean * mean, 0) * n / np.maximum(n - 1, 1)
    return mean, var


MIN_PER_ARM = 50  # no look before this many outcomes per arm: plug-in variances settle


def _checkpoints(na: int, nb: int) -> list[tuple[int, int]]:
    """Looks in arrival order: both arms grow in proportion (every ~1 % of the data)."""
    out = []
    for f in np.linspace(0, 1, 101)[1:]:
        a, b = int(round(na * f)), int(round(nb * f))
        if a >= MIN_PER_ARM and b >= MIN_PER_ARM:
            out.append((a, b))
    return out


@dataclass
class ABResult:
    metric: str
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    fixed_p_value: float
    fixed_test: str
    alpha: float
    mde: float
    needed_per_arm: int
    decision: str
    why: str
    method: str = METHOD
    higher_is_better: bool = True
    experiment: str | None = None
    control_version: int | None = None
    treatment_version: int | None = None
    started: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _needed(sd_a: float, sd_b: float, mde: float, alpha: float, n_now: int) -> int:
    if mde <= 0:
        return 0
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)
    per_arm = math.ceil(z * z * (sd_a**2 + sd_b**2) / (mde * mde))
    return int(max(per_arm - n_now, 0))


def ab_decision(
    xa: np.ndarray,
    xb: np.ndarray,
    *,
    metric: str,
    rate: bool,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    mde: float = 0.02,
    tau: float | None = None,
    control: str = "champion",
    treatment: str = "challenger",
) -> ABResult:
    """Compare arrival-ordered outcomes ``xa`` (control) and ``xb`` (treatment)."""
    xa, xb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    effect, p, low, high = msprt(xa * sign, xb * sign, tau or max(mde, 1e-6), alpha)
    effect, low, high = effect * sign, *(sorted((low * sign, high * sign)))
    if rate:
        fixed_test = "two-proportion z"
        pa, pb = (xa.mean() if len(xa) else 0.0), (xb.mean() if len(xb) else 0.0)
        pool = (xa.sum() + xb.sum()) / max(len(xa) + len(xb), 1)
        se = math.sqrt(max(pool * (1 - pool) * (1 / max(len(xa), 1) + 1 / max(len(xb), 1)), 1e-12))
        fixed_p = float(2 * stats.norm.sf(abs((pb - pa) / se)))
    else:
        fixed_test = "Welch t"
        fixed_p = (
            float(stats.ttest_ind(xb, xa, equal_var=False).pvalue)
            if len(xa) > 1 and len(xb) > 1
            else 1.0
        )
    better = effect * sign > 0
    sd_a = float(xa.std(ddof=1)) if len(xa) > 1 else 0.5
    sd_b = float(xb.std(ddof=1)) if len(xb) > 1 else 0.5
    needed = _needed(sd_a, sd_b, mde, alpha, min(len(xa), len(xb)))
    if p < alpha and better:
        decision, why = "promote", f"{treatment} is better (always-valid p = {p:.3g} < {alpha:g})"
    elif p < alpha:
        decision, why = "keep", f"{treatment} is worse (always-valid p = {p:.3g} < {alpha:g})"
    elif -mde < low and high < mde:
        decision, why = "keep", f"no difference of {mde:g} or more (CI inside ±{mde:g})"
    else:
        decision, why = "continue", f"not decided yet (always-valid p = {p:.3g} ≥ {alpha:g})"
    return ABResult(
        metric=metric, control=control, treatment=treatment, n_control=len(xa),
        n_treatment=len(xb), mean_control=float(xa.mean()) if len(xa) else float("nan"),
        mean_treatment=float(xb.mean()) if len(xb) else float("nan"), effect=effect,
        ci_low=low, ci_high=high, p_value=p, fixed_p_value=fixed_p, fixed_test=fixed_test,
        alpha=alpha, mde=mde, needed_per_arm=0 if decision != "continue" else needed,
        decision=decision, why=why, higher_is_better=higher_is_better,
    )  # fmt: skip


METRICS = {
    "accuracy": (True, True),  # (rate, higher is better)
    "label": (False, True),
    "abs_error": (False, False),
    "squared_error": (False, False),
}


def outcomes(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """Per-request outcome values for ``metric`` from labelled log rows."""
    if metric == "accuracy":
        hit = rows["prediction"].astype(str) == rows["label"].astype(str)
        return np.asarray(hit.to_numpy(dtype=float))
    if metric == "label":
        return np.asarray(rows["label_num"].to_numpy(dtype=float))
    err = rows["label_num"].to_numpy(dtype=float) - rows["score"].to_numpy(dtype=float)
    return np.asarray(np.abs(err) if metric == "abs_error" else err * err)


def abtest(
    name: str,
    *,
    metric: str | None = None,
    control: str = "champion",
    treatment: str = "challenger",
    since: float | None = None,
    alpha: float = 0.05,
    mde: float | None = None,
    experiment: str | None = None,
) -> ABResult:
    """The A/B verdict of ``name``'s experiment (the active one, or ``experiment`` by id)."""
    from keizoku.errors import NotFoundError, UserInputError
    from keizoku.lifecycle.experiments import active_experiment, load_experiment
    from keizoku.monitoring.performance import labelled_rows
    from keizoku.names import check_name
    from keizoku.registry.models import resolve

    check_name(name)
    exp = load_experiment(name, experiment) if experiment else active_experiment(name)
    if exp is not None:
        control, treatment = exp.control.alias, exp.treatment.alias
        cv, tv = exp.control.version, exp.treatment.version
        since = max(since or 0.0, exp.started)
    else:
        cv, tv = resolve(f"{name}@{control}")[1], resolve(f"{name}@{treatment}")[1]
    if cv == tv:
        raise UserInputError(
            f"'{control}' and '{treatment}' of '{name}' are the same version ({cv}); an A/B "
            f"test needs two. Start one with `keizoku deploy {name} --split champion=90,"
            "challenger=10`."
        )
    rows = labelled_rows(name, since=since, until=exp.ended if exp else None)
    if rows.empty:
        raise NotFoundError(
            f"No labelled predictions for '{name}'"
            + (f" since experiment {exp.id} started" if exp else "")
            + f": send labels with `keizoku feedback {name} FILE` or POST "
            f"/v1/models/{name}/feedback."
        )
    shadow = rows["shadow"].astype(bool)
    version = rows["version"].astype(int)
    a = rows[(version == cv) & ~shadow]
    b = rows[(version == tv) & (shadow if exp is not None and exp.kind == "shadow" else ~shadow)]
    if metric is None:
        from keizoku.monitoring.reference import load_reference

        task = load_reference(f"{name}:{cv}").task
        metric = "abs_error" if task == "regression" else "accuracy"
    if metric not in METRICS:
        raise UserInputError(f"Unknown A/B metric '{metric}'. Choose one of: {', '.join(METRICS)}.")
    rate, higher = METRICS[metric]
    if a.empty or b.empty:
        seen = sorted({int(v) for v in version.unique()})
        raise NotFoundError(
            f"A/B test of '{name}' needs labelled traffic on both v{cv} ({control}) and v{tv} "
            f"({treatment})" + (f" since experiment {exp.id} started" if exp else "")
            + f"; versions with labels: {seen}. Split traffic with `keizoku deploy {name} "
            "--split champion=90,challenger=10`."
        )  # fmt: skip
    default_mde = (
        0.02 if rate or metric == "label" else 0.05 * float(abs(outcomes(a, metric).mean()))
    )
    result = ab_decision(
        outcomes(a.sort_values("ts"), metric), outcomes(b.sort_values("ts"), metric),
        metric=metric, rate=rate, higher_is_better=higher, alpha=alpha,
        mde=mde if mde is not None else default_mde, control=control, treatment=treatment,
    )  # fmt: skip
    result.experiment, result.control_version, result.treatment_version = (
        exp.id if exp else None, cv, tv,
    )  # fmt: skip
    result.started = exp.started if exp else None
    if exp is None:
        result.why += " (no experiment recorded: all labelled traffic of the two versions)"
    return result
