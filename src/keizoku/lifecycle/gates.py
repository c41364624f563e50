"""Gates a challenger must pass before it stays ``challenger``.

* **metric gain with confidence**: champion and challenger score the same recent
  hold-out (labelled traffic kept out of training); a paired bootstrap of the
  metric difference (rows resampled together, so both models see the same rows)
  gives a confidence interval; the gate passes when its lower bound exceeds
  ``min_gain`` (metric units, oriented so that positive = challenger better).
  Resampled scores are computed in array operations (``lifecycle.resample``).
* **baseline**: the candidate must beat a trivial model (the hold-out's class shares for
  classification, its mean for regression) on the same rows, by the same paired bootstrap
  (lower bound above 0): a model fitted on shuffled labels fails it.
* **latency**: median one-row scoring time of the challenger at most
  ``(1 + max_latency_increase)`` × the champion's (+ ``latency_slack_ms``).
* **evidence** (model card, fairness gap within the spec's ``fairness:`` limits):
  ``keizoku.evaluation.gate.check_evidence``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from keizoku.lifecycle.resample import index_blocks, resampled_scores

if TYPE_CHECKING:
    from keizoku.registry.servable import ServableModel
    from keizoku.training.metrics import Metric  # an annotation: no scikit-learn for the spec

__all__ = [
    "GateConfig",
    "GateCheck",
    "GateReport",
    "paired_bootstrap",
    "latency_ms",
    "metric_gate",
    "latency_gate",
    "evidence_gate",
    "baseline_gate",
    "run_gates",
    "split_holdout",
    "HOLDOUT_SHARE",
]

HOLDOUT_SHARE = 0.2  # of the data `keizoku train` keeps out to gate a candidate


class GateConfig(BaseModel):
    """Spec ``retraining.gates``."""

    model_config = ConfigDict(extra="forbid")

    min_gain: float = 0.0
    confidence: float = 0.95
    bootstrap: int = 1000
    max_latency_increase: float = 0.5
    latency_slack_ms: float = 0.5
    evidence: bool = True


@dataclass
class GateCheck:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass
class GateReport:
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def _oriented(metric: Metric, y: np.ndarray, pred: np.ndarray) -> float:
    return metric.oriented(y, pred)


def paired_bootstrap(
    metric: Metric,
    y: np.ndarray,
    pred_champion: np.ndarray,
    pred_challenger: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Challenger − champion, oriented (positive = challenger better), with a bootstrap CI.

    Returns ``delta`` (on the full hold-out), ``low``/``high`` (percentile interval
    at ``confidence``), ``p_value`` (one-sided: share of resamples with delta ≤ 0)
    and ``n``.
    """
    y = np.asarray(y)
    a, b = np.asarray(pred_champion), np.asarray(pred_challenger)
    n = len(y)
    rng = np.random.default_rng(seed)
    delta = _oriented(metric, y, b) - _oriented(metric, y, a)
    deltas = _vector_deltas(metric, y, a, b, rng, n_boot)
    if deltas is None:
        deltas = _looped_deltas(metric, y, a, b, rng, n_boot)
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail]) if len(deltas) else (np.nan, np.nan)
    p = float(np.mean(deltas <= 0)) if len(deltas) else float("nan")
    return {"delta": float(delta), "low": float(low), "high": float(high), "p_value": p, "n": n}


def _vector_deltas(
    metric: Metric, y: np.ndarray, a: np.ndarray, b: np.ndarray, rng: Any, n_boot: int
) -> np.ndarray | None:
    """Resampled deltas in array operations (``keizoku.lifecycle.resample``), or None."""
    out = []
    for idx in index_blocks(rng, len(y), n_boot):
        sb, sa = resampled_scores(metric, y, b, idx), resampled_scores(metric, y, a, idx)
        if sa is None or sb is None:
            return None
        out.append(sb - sa)
    deltas = np.concatenate(out)
    return np.asarray(deltas[~np.isnan(deltas)])  # a resample with one class only


def _looped_deltas(
    metric: Metric, y: np.ndarray, a: np.ndarray, b: np.ndarray, rng: Any, n_boot: int
) -> np.ndarray:
    """One metric call per resample, for metrics without an array form."""
    deltas = np.empty(n_boot)
    k = 0
    for _ in range(n_boot * 3):
        if k == n_boot:
            break
        idx = rng.integers(0, len(y), len(y))
        try:
            deltas[k] = _oriented(metric, y[idx], b[idx]) - _oriented(metric, y[idx], a[idx])
        except ValueError:  # a resample with one class only
            continue
        k += 1
    return deltas[:k]


def latency_ms(
    champion: ServableModel,
    challenger: ServableModel,
    records: list[dict[str, Any]],
    repeats: int = 50,
) -> tuple[float, float]:
    """Median time to score one record on the serving fast path, champion and challenger.

    The two are timed in turns, record by record, so a burst of load on a shared machine
    (a cron job, another training) slows both alike instead of only whichever ran then.
    """
    rows = (records * (repeats // max(len(records), 1) + 1))[:repeats] or [{}]
    models = (champion, challenger)
    for model in models:
        model.predict_raw_records(rows[:1])  # warm up
    times: tuple[list[float], list[float]] = ([], [])
    for i, rec in enumerate(rows):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # neither always goes first
        for k in order:
            t = time.perf_counter()
            models[k].predict_raw_records([rec])
            times[k].append((time.perf_counter() - t) * 1000)
    return float(np.median(times[0])), float(np.median(times[1]))


def metric_gate(stats: dict[str, float], metric: str, cfg: GateConfig) -> GateCheck:
    passed = bool(stats["low"] > cfg.min_gain)
    detail = (
        f"{metric} gain {stats['delta']:+.4f} (challenger − champion on {stats['n']} hold-out "
        f"rows; {cfg.confidence:.0%} paired-bootstrap CI {stats['low']:+.4f} … "
        f"{stats['high']:+.4f})"
    )
    if not passed:
        detail += (
            f": the lower bound is not above min_gain {cfg.min_gain:g} "
            "(spec key retraining.gates.min_gain)"
        )
    return GateCheck("metric_gain", passed, stats["delta"], cfg.min_gain, detail)


def latency_gate(champion_ms: float, challenger_ms: float, cfg: GateConfig) -> GateCheck:
    budget = champion_ms * (1 + cfg.max_latency_increase) + cfg.latency_slack_ms
    passed = challenger_ms <= budget
    detail = (
        f"latency {challenger_ms:.3f} ms per row vs champion {champion_ms:.3f} ms "
        f"(budget {budget:.3f} ms)"
    )
    if not passed:
        detail += ": too slow (spec key retraining.gates.max_latency_increase)"
    return GateCheck("latency", passed, challenger_ms, budget, detail)


def evidence_gate(name: str, version: int, spec: Any) -> GateCheck | None:
    try:
        from keizoku.evaluation.gate import check_evidence
    except ImportError:
        return None
    reasons = check_evidence(name, version, spec)
    detail = " ".join(reasons) if reasons else "model card present; fairness within limits"
    return GateCheck("evidence", not reasons, float(len(reasons)), 0.0, detail)


def baseline_gate(stats: dict[str, float], metric: str) -> GateCheck:
    passed = bool(stats["low"] > 0)
    detail = (
        f"{metric} gain over a trivial baseline {stats['delta']:+.4f} (on {stats['n']} "
        f"hold-out rows; CI {stats['low']:+.4f} … {stats['high']:+.4f})"
    )
    if not passed:
        detail += (
            ": the candidate is not reliably better than predicting the class shares / the "
            "mean. Check the target column and the data, then train again."
        )
    return GateCheck("baseline", passed, stats["delta"], 0.0, detail)


def _baseline(task: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    if task == "regression":
        return np.full(len(y), float(np.mean(y)))
    shares = np.bincount(y, minlength=n_classes) / max(len(y), 1)
    return np.tile(shares, (len(y), 1))


def split_holdout(
    frame: pd.DataFrame, target: str, task: str, share: float = HOLDOUT_SHARE, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, hold-out rows): a seeded split, stratified on the target when it can be."""
    from sklearn.model_selection import train_test_split

    labelled = frame[frame[target].notna()]
    counts = labelled[target].value_counts()
    stratify = labelled[target] if task != "regression" and counts.min() >= 2 else None
    fit, hold = train_test_split(labelled, test_size=share, random_state=seed, stratify=stratify)
    return fit.reset_index(drop=True), hold.reset_index(drop=True)


def _codes(model: ServableModel, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(encoded labels, mask of rows whose label the model knows)."""
    from keizoku.data.labels import LabelCodec

    codec = LabelCodec(None if model.task == "regression" else list(model.classes or []))
    known = np.array([codec.known(v) for v in values], dtype=bool)
    return codec.encode(list(values[known])), known


def run_gates(
    name: str,
    candidate: int,
    champion: int,
    holdout: pd.DataFrame,
    target: str,
    cfg: GateConfig,
    spec: Any = None,
) -> tuple[GateReport, dict[str, Any]]:
    """Gate ``name:candidate`` against ``name:champion`` on ``holdout``: (report, statistics)."""
    from keizoku.data.labels import canonical
    from keizoku.errors import IntegrityError
    from keizoku.registry.models import load_model
    from keizoku.training.metrics import get_metric

    champ, cand = load_model(f"{name}:{champion}"), load_model(f"{name}:{candidate}")
    task = champ.schema.task
    if task is None:
        raise IntegrityError(
            f"Version {name}:{champion} has a schema without a task; "
            "retrain it with `keizoku train`."
        )
    y, known = _codes(champ, holdout[target])
    rows = holdout[known]
    features = [c.name for c in champ.schema.features + champ.schema.sensitive]
    hx = rows[[c for c in features if c in rows.columns]]
    metric = get_metric(champ.metric or None, task)
    info: dict[str, Any] = {
        "metric": metric.name,
        "rows": len(rows),
        "dropped": int((~known).sum()),
    }
    report = GateReport()
    same = [canonical(c) for c in champ.classes or []] == [canonical(c) for c in cand.classes or []]
    if len(rows) < 10 or not same:
        why = (
            f"only {len(rows)} hold-out rows with a known label (at least 10 are needed)"
            if len(rows) < 10
            else f"candidate classes {cand.classes} differ from the champion's {champ.classes}"
        )
        report.checks.append(GateCheck("metric_gain", False, None, cfg.min_gain, why))
        return report, info
    p_champ, p_cand = champ.predict_raw(hx), cand.predict_raw(hx)
    boot = {"n_boot": cfg.bootstrap, "confidence": cfg.confidence}
    stats = paired_bootstrap(metric, y, p_champ, p_cand, **boot)  # type: ignore[arg-type]
    base = _baseline(champ.task, y, len(champ.classes or []))
    base_stats = paired_bootstrap(metric, y, base, p_cand, **boot)  # type: ignore[arg-type]
    report.checks += [metric_gate(stats, metric.name, cfg), baseline_gate(base_stats, metric.name)]
    records = hx.head(50).to_dict(orient="records")
    lat = latency_ms(champ, cand, records)
    report.checks.append(latency_gate(*lat, cfg))
    if cfg.evidence:
        check = evidence_gate(name, candidate, spec)
        if check is not None:
            report.checks.append(check)
    info.update(stats, baseline=base_stats, latency_ms=lat)
    return report, info
