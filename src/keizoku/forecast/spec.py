"""The ``forecast:`` section of ``keizoku.yaml`` (strict, every key has a default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keizoku.sections import Section

__all__ = ["FORECASTERS", "ForecastCV", "ForecastSpec"]

Forecaster = Literal["seasonal_naive", "ets", "lightgbm"]
FORECASTERS: tuple[Forecaster, ...] = ("seasonal_naive", "ets", "lightgbm")


class ForecastCV(Section):
    """Time-ordered cross-validation: ``folds`` windows of ``horizon`` steps at the end of
    each series, a ``gap`` of steps left out before each, never shuffled."""

    scheme: Literal["expanding", "sliding"] = "expanding"
    folds: int = Field(default=3, ge=1, le=50)
    gap: int = Field(default=0, ge=0)


class ForecastSpec(Section):
    """What makes a table a forecasting task.

    ``time``: the timestamp column; without one, rows are consecutive periods of
    ``frequency`` from ``start``. ``frequency``: a pandas offset alias (``MS``, ``D``,
    ``B``, ``h``, ...); inferred from ``time`` when left out. ``ids``: column(s) naming
    each series. ``exogenous``: columns whose future values the caller will send.
    ``gaps``: ``error`` refuses a missing period, ``fill`` inserts it (target and
    exogenous values interpolated linearly). ``level``: the prediction intervals' nominal
    coverage. ``window``: train on the last N periods of each series only (rolling
    retraining); None keeps the whole history.
    """

    time: str | None = None
    time_format: str | None = None
    frequency: str | None = None
    start: str | None = None
    ids: list[str] = Field(default_factory=list)
    horizon: int = Field(default=12, ge=1, le=10_000)
    exogenous: list[str] = Field(default_factory=list)
    gaps: Literal["error", "fill"] = "error"
    level: float = Field(default=0.9, gt=0.0, lt=1.0)
    season: int | None = Field(default=None, ge=1)
    cv: ForecastCV = Field(default_factory=ForecastCV)
    window: int | None = Field(default=None, ge=2)
    models: list[Forecaster] = Field(default_factory=lambda: list(FORECASTERS))
