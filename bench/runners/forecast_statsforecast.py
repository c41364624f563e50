"""statsforecast's AutoETS and AutoARIMA on the bench's series (run in bench/.venv-statsforecast).

    bench/.venv-statsforecast/bin/python bench/runners/forecast_statsforecast.py JOBS OUT

JOBS: JSON list of {"name", "y" (training values), "freq", "season", "h", "level"}.
OUT: JSON {name: {"AutoETS": {"mean", "lo", "hi", "fit_s"}, "AutoARIMA": {...}}}; a model
that fails on a series gets {"error": text}. Each model is fitted on the training values
only (the last 20 seasons, at least 200 periods: the rule keizoku's ETS follows, without
which AutoARIMA on 60 days of hourly data runs for many minutes) and forecasts ``h``
periods with its own prediction interval at ``level``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoARIMA, AutoETS

RECENT_SEASONS, RECENT_MIN = 20, 200


def run(job: dict) -> dict:  # type: ignore[type-arg]
    level = round(100 * job["level"])
    season = max(int(job["season"]), 1)
    y = np.asarray(job["y"], float)[-max(RECENT_SEASONS * season, RECENT_MIN) :]
    frame = pd.DataFrame({"unique_id": "s", "ds": np.arange(len(y)), "y": y})
    out = {}
    for model in (AutoETS(season_length=season), AutoARIMA(season_length=season)):
        name = type(model).__name__
        tick = time.monotonic()
        try:
            sf = StatsForecast(models=[model], freq=1, n_jobs=1)
            fc = sf.forecast(df=frame, h=int(job["h"]), level=[level])
            out[name] = {
                "mean": fc[name].tolist(), "lo": fc[f"{name}-lo-{level}"].tolist(),
                "hi": fc[f"{name}-hi-{level}"].tolist(), "fit_s": time.monotonic() - tick,
            }  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a peer's failure is a result, not a crash
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    results = {job["name"]: run(job) for job in jobs}
    with open(sys.argv[2], "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()
