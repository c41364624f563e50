"""Forecasting: a time column (or a declared frequency), a horizon, one or many series.

Modules, bottom up: ``spec`` (the ``forecast:`` section), ``series`` (reading and checking
series: order, duplicates, gaps), ``features`` (lags, rolling means, calendar; no
look-ahead), ``models`` (seasonal naive, ETS, LightGBM with lags), ``train`` (time-ordered
CV, MASE, conformal intervals, the servable :class:`~keizoku.forecast.model.ForecastModel`),
``loop`` (train, register, gate and admit through the lifecycle). See docs/forecasting.md.

Nothing is imported here: ``keizoku.spec`` imports ``keizoku.forecast.spec`` only.
"""
