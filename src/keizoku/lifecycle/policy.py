"""The retraining policy: the ``retraining:`` section of ``keizoku.yaml``.

Every key has a default::

    retraining:
      triggers:              # any one fires a retrain (``keizoku retrain`` checks them)
        drift_features: 1    # at least this many features drifted in the monitor window
        metric_drop: 0.05    # live metric worse than the training CV score by this much
        new_labels: 1000     # labels received since the last retrain
        every: 7d            # time since the last retrain (also `keizoku loop`'s tick)
      window:
        since: 30d           # labelled traffic in this window joins the training data
        include_original: true   # keep the spec's original data in the training frame
        holdout: 0.3         # most recent share of labelled traffic, kept out for the gates
        min_labels: 100      # fewer labelled rows than this: no retrain (not enough evidence)
      train:                 # overrides of the spec's train: section (same keys) for retraining
        budget: 60s
        preset: fast
      gates:                 # see keizoku.lifecycle.gates.GateConfig
        min_gain: 0.0
        confidence: 0.95
        max_latency_increase: 0.5
      monitor_window: 24h    # traffic window the drift trigger looks at
      check_every: 1h        # how often `keizoku loop` checks the triggers
      cooldown: 1h           # at least this long between two retrains (`keizoku loop`)
      rollout:               # what `keizoku loop` does with a challenger that passed its gates
        mode: none           # none | canary | split | shadow
        canary_steps: [10, 25, 50, 100]   # % of traffic per step (`deploy --canary`)
        step_every: 1h       # time between canary steps
        split: 10            # treatment % of a `split` rollout
        max_error_rate: 0.05 # canary rolls back when its 5xx share is higher
        max_metric_drop: 0.05  # ... or its live metric is this much below the champion's
        min_labels: 30       # labelled canary outcomes needed to judge its metric

Durations are :data:`keizoku.duration.Duration` (stored as seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from keizoku.duration import Duration
from keizoku.lifecycle.gates import GateConfig
from keizoku.sections import Section, validate_section
from keizoku.training.config import TrainSpec, merge_train

__all__ = ["RetrainingPolicy", "Rollout", "Triggers", "Window", "parse_policy"]


class Triggers(Section):
    drift_features: int | None = 1
    metric_drop: float | None = 0.05
    new_labels: int | None = 1000
    every: Duration | None = 7 * 86400.0


class Window(Section):
    since: Duration = 30 * 86400.0
    include_original: bool = True
    holdout: float = Field(default=0.3, gt=0, lt=1)
    min_labels: int = 100


class Rollout(Section):
    mode: Literal["none", "canary", "split", "shadow"] = "none"
    canary_steps: list[float] = Field(default_factory=lambda: [10.0, 25.0, 50.0, 100.0])
    step_every: Duration = 3600.0
    split: float = Field(default=10.0, gt=0, lt=100)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_metric_drop: float = 0.05
    min_labels: int = 30


class RetrainingPolicy(Section):
    triggers: Triggers = Field(default_factory=Triggers)
    window: Window = Field(default_factory=Window)
    train: dict[str, Any] = Field(default_factory=lambda: {"budget": 60.0, "preset": "fast"})
    gates: GateConfig = Field(default_factory=GateConfig)
    monitor_window: Duration = 86400.0
    check_every: Duration = 3600.0
    cooldown: Duration = 3600.0
    rollout: Rollout = Field(default_factory=Rollout)

    @model_validator(mode="after")
    def _train_keys(self) -> RetrainingPolicy:
        # The overrides are keys of train:, checked as such (UserInputError passes through
        # pydantic unchanged, already worded with its section).
        merge_train(TrainSpec(), self.train, section="retraining.train")
        return self

    def train_spec(self, base: TrainSpec) -> TrainSpec:
        """``base`` (the spec's ``train:``) with this policy's overrides applied."""
        return merge_train(base, self.train, section="retraining.train")


def parse_policy(section: RetrainingPolicy | Mapping[str, Any] | None) -> RetrainingPolicy:
    """The typed ``retraining:`` section (validated when given as a mapping)."""
    return validate_section(RetrainingPolicy, section, "retraining")
