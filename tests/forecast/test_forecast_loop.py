"""A forecasting project through the loop, with the real executable, registry and server:
init (inferred) → train (champion) → predict → serve (+ prediction log) → train again (gated)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from keizoku.monitoring.log import segment_glob
from kzsupport import KEIZOKU_EXE, CliResult, Server

HORIZON = 6


def _data(n: int = 84, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for j, store in enumerate(("north", "south")):
        t = np.arange(n)
        promo = (rng.random(n) < 0.3).astype(float)
        sales = 50 + 10 * j + 0.4 * t + 6 * np.sin(2 * np.pi * t / 12) + 8 * promo
        sales += rng.normal(0, 1.0, n)
        dates = pd.date_range("2015-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"store": store, "month": dates, "promo": promo,
                                   "sales": sales.round(2)}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".keizoku"
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(self.home)}

    def run(self, *args: str) -> CliResult:
        proc = subprocess.run([KEIZOKU_EXE, *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        return CliResult(proc)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("forecast"))
    frame = _data()
    frame.to_csv(p.root / "sales.csv", index=False)
    init = p.run("init", "sales.csv", "--target", "sales", "--id", "store")
    assert init.code == 0, init.text
    assert "Task forecast (inferred): time column 'month', frequency MS" in init.text
    spec = yaml.safe_load((p.root / "keizoku.yaml").read_text())
    assert spec["task"] == "forecast" and spec["forecast"]["ids"] == ["store"]
    spec["forecast"].update(horizon=HORIZON, exogenous=["promo"], cv={"folds": 2},
                            models=["seasonal_naive", "lightgbm"])  # fmt: skip
    spec.setdefault("train", {})["max_trials"] = 2  # both, whatever the load (no budget)
    (p.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    yield p


@pytest.fixture(scope="module")
def first(project: Project) -> dict:  # type: ignore[type-arg]
    res = project.run("train", "--json")
    assert res.code == 0, res.text
    return json.loads(res.out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_first_version_is_champion_with_a_mase_leaderboard(first: dict) -> None:  # type: ignore[type-arg]
    assert first["state"] == "champion" and first["task"] == "forecast"
    board = {row["model"]: row for row in first["leaderboard"]}
    assert set(board) == {"seasonal_naive", "lightgbm"}
    assert first["best"] == "lightgbm" and first["cv_score"] == board["lightgbm"]["mase"]
    assert board["lightgbm"]["mase"] < board["seasonal_naive"]["mase"]
    assert 0.0 <= first["coverage"] <= 1.0 and first["level"] == 0.9


def test_predict_forecasts_from_a_history_file(project: Project, first: dict) -> None:  # type: ignore[type-arg]
    history = _data()
    future = history.groupby("store").tail(HORIZON).copy()
    future["month"] = (pd.to_datetime(future["month"]) + pd.DateOffset(months=HORIZON)).dt.strftime(
        "%Y-%m-%d"
    )
    future["sales"] = np.nan
    pd.concat([history, future]).to_csv(project.root / "history.csv", index=False)
    res = project.run("predict", "history.csv", "-m", "sales", "-o", "forecast.csv")
    assert res.code == 0, res.text
    out = pd.read_csv(project.root / "forecast.csv")
    assert len(out) == 2 * HORIZON and list(out["step"][:HORIZON]) == list(range(1, HORIZON + 1))
    assert out["month"].iloc[0] == "2022-01-01"
    assert (out["lower"] < out["forecast"]).all() and (out["forecast"] < out["upper"]).all()
    no_future = project.run("predict", "sales.csv", "-m", "sales", "-o", "nf.csv")
    assert no_future.code != 0 and "exogenous column(s) ['promo']" in no_future.text


def test_server_forecasts_logs_and_refuses_bad_history(project: Project, first: dict) -> None:  # type: ignore[type-arg]
    history = _data()[lambda f: f["store"] == "north"].tail(36)
    future = [
        {"store": "north", "month": d, "promo": 0.0}
        for d in pd.date_range("2022-01-01", periods=3, freq="MS").strftime("%Y-%m-%d")
    ]
    records = json.loads(history.to_json(orient="records"))
    server = Server(project.root, env=project.env).wait_ready()
    try:
        ok = server.client.post(
            "/v1/models/sales/forecast", json={"history": records, "future": future, "horizon": 3}
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["version"] == first["version"] and body["level"] == 0.9
        steps = body["forecasts"]
        assert [s["step"] for s in steps] == [1, 2, 3] and steps[0]["month"].startswith(
            "2022-01-01"
        )
        assert all(s["lower"] < s["forecast"] < s["upper"] for s in steps)
        dup = records + [records[-1]]
        bad = server.client.post(
            "/v1/models/sales/forecast", json={"history": dup, "future": future}
        )
        assert bad.status_code == 422 and "repeats timestamp 2021-12-01" in bad.text
        long = server.client.post(
            "/v1/models/sales/forecast", json={"history": records, "future": future, "horizon": 99}
        )
        assert long.status_code in (400, 422) and "horizon 99" in long.text
        short = server.client.post(
            "/v1/models/sales/forecast",
            json={"history": records[:2], "future": future, "horizon": 3},
        )
        assert short.status_code == 422 and "fewer than the horizon 3" in short.text
        missing = server.client.post("/v1/models/sales/forecast", json={"history": records})
        assert missing.status_code == 422 and "promo" in missing.text
    finally:
        assert server.stop() == 0
    segments = glob.glob(segment_glob("sales", project.home))
    logged = pd.concat([pd.read_parquet(f) for f in segments]) if segments else pd.DataFrame()
    assert len(logged) == 3 and set(logged["entity_id"]) == {"north"}
    assert set(logged["request_id"]) == {s["request_id"] for s in steps}
    # The actuals arrive: the live error of the logged forecasts (keizoku.forecast.monitor).
    truth = _data(84 + 3)[lambda f: f["store"] == "north"].tail(3)
    truth.to_csv(project.root / "actuals.csv", index=False)
    res = project.run("forecast-error", "sales", "actuals.csv", "--json")
    assert res.code == 0, res.text
    live = json.loads(res.out.strip().splitlines()[-1])
    errors = np.abs(truth["sales"].to_numpy() - np.array([s["forecast"] for s in steps]))
    assert live["matched"] == 3 and live["logged"] == 3
    assert live["mae"] == pytest.approx(errors.mean())
    assert list(live["mae_by_step"]) == ["1", "2", "3"] and live["mase"] > 0
    # `monitor` reports the live error of the actuals stored as feedback: none yet
    monitor = project.run("monitor", "sales")
    said = " ".join(monitor.text.split())
    assert monitor.code == 0 and "none of 3 logged forecast period(s) has an actual yet" in said


def test_second_version_is_gated_on_the_latest_window(project: Project, first: dict) -> None:  # type: ignore[type-arg]
    res = project.run("train", "--json")
    assert res.code in (0, 6), res.text
    second = json.loads(res.out.strip().splitlines()[-1])
    assert second["version"] == first["version"] + 1
    assert second["state"] == ("challenger" if res.code == 0 else "gated-fail")
    (check,) = second["gates"]["checks"]
    assert check["name"] == "metric" and f"latest {HORIZON} period(s)" in check["detail"]
    assert check["passed"] == (check["value"] <= check["threshold"])
    history = project.run("history", "sales", "--json")
    assert history.code == 0, history.text
    assert '"gate"' in history.out and '"register"' in history.out


def test_task_forecast_without_a_time_column_says_what_is_missing(project: Project) -> None:
    _data().drop(columns="month").to_csv(project.root / "notime.csv", index=False)
    res = project.run("init", "notime.csv", "--target", "sales", "--task", "forecast",
                      "--config", "other.yaml")  # fmt: skip
    assert res.code != 0 and "no datetime column with a regular frequency" in res.text


def test_retrain_fires_only_when_forced_or_the_live_error_grows(project: Project) -> None:
    quiet = project.run("retrain", "sales", "--json")  # no logged period has an actual in the data
    assert quiet.code == 0, quiet.text
    assert json.loads(quiet.out)["status"] == "skipped"
    forced = project.run("retrain", "sales", "--force", "--json")
    assert forced.code in (0, 6), forced.text
    outcome = json.loads(forced.out.strip().splitlines()[0])
    assert outcome["triggers"][0]["kind"] == "forced" and outcome["version"] >= 3
    assert outcome["status"] == ("passed" if forced.code == 0 else "failed")
    assert outcome["gates"]["checks"][0]["name"] == "metric"
