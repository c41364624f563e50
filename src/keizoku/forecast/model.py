"""``ForecastModel``: a registered forecaster, loaded by ``keizoku.registry.load_model``.

It satisfies :class:`keizoku.registry.servable.ServableModel` (schema, task, info, ...)
so the registry stores, hashes and loads it like any model; its scoring entry point is
:meth:`ForecastModel.forecast` (history in, the next horizon with intervals out). The
row-wise ``predict*`` methods refuse with a message naming ``forecast``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema
from keizoku.errors import DataError, UserInputError
from keizoku.forecast.models import Forecaster
from keizoku.forecast.series import Series, future_exogenous, series_name, split_series
from keizoku.forecast.spec import ForecastSpec

__all__ = ["ForecastModel"]


class ForecastModel:
    """A fitted forecaster with its spec, frequency and conformal interval widths."""

    def __init__(
        self,
        schema: Schema,
        spec: ForecastSpec,
        frequency: str,
        season: int,
        forecaster: Forecaster,
        sigma: np.ndarray,
        q: float,
        info: dict[str, Any],
    ) -> None:
        self._schema = schema
        self.spec = spec
        self.frequency = frequency
        self.season = season
        self.forecaster = forecaster
        self.sigma = np.asarray(sigma, dtype=float)
        self.q = float(q)
        self._info = info

    # --- what the registry and the lifecycle read (ServableModel)
    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def task(self) -> str:
        return "forecast"

    @property
    def classes(self) -> list[Any] | None:
        return None

    @property
    def metric(self) -> str:
        return "mase"

    @property
    def members(self) -> Sequence[Any]:
        return ()

    @property
    def feature_names(self) -> list[str]:
        return list(self.spec.exogenous)

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def horizon(self) -> int:
        return len(self.sigma)

    def _refuse(self, *_: Any) -> Any:
        raise UserInputError(
            "This is a forecasting model: it forecasts the next periods of a series from its "
            "history (POST /v1/models/NAME/forecast, `keizoku predict` with a history file), "
            "not one value per row."
        )

    predict_raw = predict_raw_records = labels = predict = predict_records = _refuse

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The forecast of the history in ``frame`` (``keizoku predict``): rows with an
        empty target are the future periods (their exogenous values), the others history."""
        target = str(self.schema.target)
        if target not in frame.columns:
            raise DataError(
                f"The history lacks the target column '{target}': send the recent periods "
                "with their values (rows with an empty target are taken as future periods)."
            )
        empty = frame[target].isna()
        future = frame[empty] if empty.any() else None
        horizon = None
        if future is not None:
            per_series = future.groupby(self.spec.ids).size() if self.spec.ids else [len(future)]
            horizon = min(int(max(per_series)), self.horizon)
        return self.forecast(frame[~empty], future, horizon)

    # --- forecasting
    def series_of(self, history: pd.DataFrame) -> list[Series]:
        """The checked series of a history table (same rules as in training)."""
        series, _ = split_series(
            history, self.spec, str(self.schema.target), frequency=self.frequency
        )
        return series

    def forecast_series(
        self, s: Series, horizon: int, future_exog: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(forecast, half-width of the interval) of the next ``horizon`` periods of ``s``."""
        from keizoku.forecast.train import mase_scale

        point = self.forecaster.forecast(s, horizon, future_exog)
        half = self.q * self.sigma[:horizon] * mase_scale(s.y, self.season)
        return point, half

    def forecast(
        self,
        history: pd.DataFrame,
        future: pd.DataFrame | None = None,
        horizon: int | None = None,
    ) -> pd.DataFrame:
        """The next ``horizon`` periods (default: the model's) of each series in ``history``.

        ``future``: the exogenous values of those periods (required when the model has
        exogenous columns). Columns: the id columns, the time column, ``step``,
        ``forecast``, ``lower``, ``upper``, the exogenous columns.
        """
        steps = self.horizon if horizon is None else int(horizon)
        if not 1 <= steps <= self.horizon:
            raise UserInputError(
                f"horizon {steps} is outside 1..{self.horizon}: the model's intervals are "
                f"calibrated up to forecast.horizon = {self.horizon}; retrain with a longer one."
            )
        series = self.series_of(history)
        for s in series:
            if len(s) < max(steps, 2):
                raise DataError(
                    f"The history of {series_name(s.key, self.spec.ids)} has {len(s)} "
                    f"period(s), fewer than the horizon {steps}: send at least {max(steps, 2)} "
                    f"(rows {int(s.rows[0])}-{int(s.rows[-1])} were given)."
                )
        exog = future_exogenous(future, self.spec, series, self.frequency, steps)
        time_col = self.spec.time or "time"
        parts = []
        for s in series:
            point, half = self.forecast_series(s, steps, exog[s.key])
            part = pd.DataFrame({c: [v] * steps for c, v in zip(self.spec.ids, s.key, strict=True)})
            part[time_col] = pd.date_range(s.index[-1], periods=steps + 1, freq=self.frequency)[1:]
            part["step"] = np.arange(1, steps + 1)
            part["forecast"] = point
            part["lower"] = point - half
            part["upper"] = point + half
            for j, column in enumerate(self.spec.exogenous):  # what the forecast assumed
                part[column] = exog[s.key][:, j]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
