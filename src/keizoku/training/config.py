"""The ``train:`` section of ``keizoku.yaml``: it *is* the search configuration.

``keizoku train`` flags, ``retraining.train`` overrides and library callers all
produce a :class:`TrainSpec`; the search (:mod:`keizoku.training.search`) reads it
as it is, with no copy into a second type. Light on purpose (pydantic only), so the
spec loads without importing the model zoo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from keizoku.duration import Duration
from keizoku.sections import Section, validate_section

__all__ = ["TrainSpec", "merge_train"]


class TrainSpec(Section):
    """The search: budget, strategy, preset, metric, serving limits, and when to stop.

    ``budget`` is an upper bound on the wall clock. ``max_trials`` makes the search
    deterministic: it stops after that many finished trials whatever the clock says
    (the same data, spec and seed give the same leaderboard), and the preset's latency
    preference, which depends on the machine's speed, is not applied (an explicit
    ``max_latency_ms`` still is).
    """

    budget: Duration = 60.0
    search: Literal["bayes", "random", "grid"] = "bayes"
    preset: Literal["fast", "good", "best", "balanced"] = "good"  # balanced: alias of good
    metric: str | None = None
    folds: int | None = Field(default=None, ge=2, le=20)
    models: list[str] | None = None
    # Families the search never tries (`keizoku train --exclude-family`), e.g. one that
    # `keizoku export` cannot convert.
    exclude_models: list[str] | None = None
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0)
    ensemble: bool = True
    seed: int = 0
    max_trials: int | None = Field(default=None, ge=1)
    # Fit each trial's folds as tasks on this Ray cluster ('auto', HOST:PORT, ray://…):
    # the same leaderboard as locally (keizoku.distributed, docs/ray.md).
    ray: str | None = None


def merge_train(
    base: TrainSpec, overrides: Mapping[str, Any] | None, section: str = "train"
) -> TrainSpec:
    """``base`` with the non-None ``overrides`` applied, validated as one ``train:`` section."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged = {**base.model_dump(exclude_unset=True), **given}
    return validate_section(TrainSpec, merged, section)
