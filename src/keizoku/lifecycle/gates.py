"""Gates a challenger must pass before it stays ``challenger``.

* **metric gain with confidence**: champion and challenger score the same recent
  hold-out (labelled traffic kept out of training); a paired bootstrap of the
  metric difference (rows resampled together, so both models see the same rows)
  gives a confidence interval; the gate passes when its lower bound exceeds
  ``min_gain`` (metric units, oriented so that positive = challenger better).
  For regression metrics the bootstrap resamples paired per-row errors.
* **latency**: median one-row scoring time of the challenger at most
  ``(1 + max_latency_increase)`` × the champion's (+ ``latency_slack_ms``).
* **evidence** (model card, fairness gap within the spec's ``fairness:`` limits):
  ``keizoku.evaluation.gate.check_evidence``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from keizoku.training.metrics import Metric

__all__ = [
    "GateConfig",
    "GateCheck",
    "GateReport",
    "paired_bootstrap",
    "latency_ms",
    "metric_gate",
    "latency_gate",
    "evidence_gate",
]


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
    if metric.needs == "value" and metric.name in ("rmse", "mae"):
        deltas = _paired_errors(metric.name, y, a, b, rng, n_boot)
    else:
        deltas = np.empty(n_boot)
        k = 0
        for _ in range(n_boot * 3):
            if k == n_boot:
                break
            idx = rng.integers(0, n, n)
            try:
                deltas[k] = _oriented(metric, y[idx], b[idx]) - _oriented(metric, y[idx], a[idx])
            except ValueError:  # a resample with one class only
                continue
            k += 1
        deltas = deltas[:k]
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail]) if len(deltas) else (np.nan, np.nan)
    p = float(np.mean(deltas <= 0)) if len(deltas) else float("nan")
    return {"delta": float(delta), "low": float(low), "high": float(high), "p_value": p, "n": n}


def _paired_errors(
    name: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, rng: Any, n_boot: int
) -> np.ndarray:
    ea = (y - a) ** 2 if name == "rmse" else np.abs(y - a)
    eb = (y - b) ** 2 if name == "rmse" else np.abs(y - b)
    n = len(y)
    idx = rng.integers(0, n, (n_boot, n))
    ma, mb = ea[idx].mean(axis=1), eb[idx].mean(axis=1)
    if name == "rmse":
        ma, mb = np.sqrt(ma), np.sqrt(mb)
    return ma - mb  # losses: champion − challenger = oriented gain


def latency_ms(model: Any, records: list[dict[str, Any]], repeats: int = 50) -> float:
    """Median time to score one record on the serving fast path."""
    rows = (records * (repeats // max(len(records), 1) + 1))[:repeats] or [{}]
    model.predict_raw_records(rows[:1])  # warm up
    times = []
    for rec in rows:
        t = time.perf_counter()
        model.predict_raw_records([rec])
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


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
