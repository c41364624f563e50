"""Forecasting: a time column (or a declared frequency), a horizon, one or many series.

Modules, bottom up: ``spec`` (the ``forecast:`` section), ``series`` (reading and checking
series: order, duplicates, gaps), ``features`` (lags, rolling means, calendar; no
look-ahead), ``models`` (seasonal naive, ETS, LightGBM with lags), ``train`` (time-ordered
CV, MASE, conformal intervals), ``model`` (the servable ``ForecastModel``), ``infer``
(``keizoku init``), ``monitor`` (the live error from the prediction log, layer 4) and
``loop`` (train, register, gate, admit and retrain through the lifecycle, layer 6).
See docs/forecasting.md.

Nothing is imported here: ``keizoku.spec`` imports ``keizoku.forecast.spec`` only.
"""
