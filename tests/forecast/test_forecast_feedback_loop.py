"""Forecasting through serve → feedback → monitor → loop → retrain, with the real executable,
registry and server: the actuals that come true join the forecast log, `monitor` reports the
live MASE and coverage, and `loop --once` retrains on the continued series and gates it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import text_support
from kzsupport import Server

HORIZON = 3
N = 60
Served = list[dict[str, Any]]


def _data(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Two stores' monthly sales with a promotion flag (the same draw for every ``n``)."""
    rng = np.random.default_rng(seed)
    parts = []
    for j, store in enumerate(("north", "south")):
        t = np.arange(120)
        promo = (rng.random(120) < 0.3).astype(float)
        noise = rng.normal(0, 1.0, 120)
        sales = 50 + 10 * j + 0.4 * t + 6 * np.sin(2 * np.pi * t / 12) + 8 * promo + noise
        dates = pd.date_range("2015-01-01", periods=120, freq="MS").strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"store": store, "month": dates, "promo": promo,
                                   "sales": sales.round(2)})[:n])  # fmt: skip
    return pd.concat(parts, ignore_index=True)


class Project(text_support.Project):
    def set_min_gain(self, value: float) -> None:
        spec = yaml.safe_load((self.root / "keizoku.yaml").read_text())
        spec["retraining"] = {"gates": {"min_gain": value}, "cooldown": "0s"}
        (self.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))


def _last_json(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _audit(project: Project, action: str) -> list[dict[str, Any]]:
    lines = project.run("history", "sales", "--json").out.splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in entries if e.get("action") == action]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    p = Project(tmp_path_factory.mktemp("forecast-loop"))
    _data().to_csv(p.root / "sales.csv", index=False)
    assert p.run("init", "sales.csv", "--target", "sales", "--id", "store").code == 0
    spec = yaml.safe_load((p.root / "keizoku.yaml").read_text())
    spec["forecast"].update(horizon=HORIZON, exogenous=["promo"], cv={"folds": 2},
                            models=["seasonal_naive", "lightgbm"])  # fmt: skip
    spec.setdefault("train", {})["max_trials"] = 2  # both, whatever the load (no budget)
    (p.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    p.set_min_gain(100.0)  # the first retrain must fail its gate: MASE 100 better
    first = p.run("train", "--json")
    assert first.code == 0 and _last_json(first.out)["state"] == "champion", first.text
    return p


@pytest.fixture(scope="module")
def served(project: Project) -> Served:
    """The forecasts of the next HORIZON months of both stores, from the server."""
    history = json.loads(_data().to_json(orient="records"))
    months = pd.date_range("2020-01-01", periods=HORIZON, freq="MS").strftime("%Y-%m-%d")
    truth = _data(N + HORIZON).groupby("store").tail(HORIZON)
    future = truth[["store", "month", "promo"]].to_dict(orient="records")
    assert list(truth["month"][:HORIZON]) == list(months)
    server = Server(project.root, env=project.env).wait_ready()
    try:
        res = server.client.post("/v1/models/sales/forecast", json={"history": history,
                                                                    "future": future})  # fmt: skip
        assert res.status_code == 200, res.text
    finally:
        assert server.stop() == 0
    forecasts: Served = res.json()["forecasts"]
    assert len(forecasts) == 2 * HORIZON and {f["promo"] for f in forecasts} <= {0.0, 1.0}
    return forecasts


def test_monitor_before_the_actuals_says_none_has_come_true(
    project: Project, served: Served
) -> None:
    res = project.run("monitor", "sales", "--json")
    assert res.code == 0, res.text
    live = _last_json(res.out)
    assert live["matched"] == 0 and live["logged"] == 2 * HORIZON and live["mase"] is None


def test_feedback_joins_the_actuals_to_the_logged_forecasts(
    project: Project, served: Served
) -> None:
    truth = _data(N + HORIZON).groupby("store").tail(HORIZON)
    stray = pd.DataFrame([{"store": "north", "month": "2030-01-01", "promo": 0.0, "sales": 1.0}])
    pd.concat([truth, stray]).to_csv(project.root / "actuals.csv", index=False)
    res = project.run("feedback", "sales", "actuals.csv", "--json")
    assert res.code == 2, res.text  # one rejected row: exit 2, the others stored
    report = _last_json(res.out)
    assert report["stored"] == 2 * HORIZON
    (rejected,) = report["rejected"]
    assert rejected["record"] == 2 * HORIZON + 1 and rejected["entity_id"] == "north"
    assert "at 2030-01-01, for which no forecast was logged" in rejected["reason"]
    history = project.run("history", "sales", "--json")
    assert '"feedback"' in history.out


def test_monitor_reports_the_live_mase_and_coverage(project: Project, served: Served) -> None:
    res = project.run("monitor", "sales", "--json")
    assert res.code in (0, 11), res.text
    live = _last_json(res.out)
    truth = _data(N + HORIZON).groupby("store").tail(HORIZON)
    actual = truth.set_index(["store", "month"])["sales"]
    errors = [abs(actual[(f["store"], f["month"][:10])] - f["forecast"]) for f in served]
    inside = [f["lower"] <= actual[(f["store"], f["month"][:10])] <= f["upper"] for f in served]
    assert live["source"] == "feedback" and live["matched"] == 2 * HORIZON
    assert live["mae"] == pytest.approx(np.mean(errors))
    assert live["coverage"] == pytest.approx(np.mean(inside)) and live["level"] == 0.9
    assert live["metric_drop"] == (res.code == 11)
    assert live["metric_drop"] == (live["mase"] > live["cv_mase"] * 1.5)
    text = project.run("monitor", "sales")
    assert f"{2 * HORIZON} of {2 * HORIZON} logged forecast period(s)" in text.text


def test_loop_retrains_on_the_continued_series_and_the_gate_refuses(
    project: Project, served: Served
) -> None:
    res = project.run("loop", "sales", "--once", "--json")
    assert res.code == 6, res.text  # min_gain 100: the candidate cannot pass
    tick = _last_json(res.out)
    kinds = {t["kind"] for t in tick["triggers"]}
    assert "new_labels" in kinds and tick["retrain"] == "failed" and tick["version"] == 2
    assert any(f"{HORIZON} new period(s) since v1" in t["sentence"] for t in tick["triggers"])
    retrain = _audit(project, "retrain")[-1]
    assert retrain["evidence"]["rows"]["from_feedback"] == 2 * HORIZON
    check = retrain["evidence"]["gates"]["checks"][0]
    assert check["name"] == "metric" and not check["passed"]
    again = project.run("loop", "sales", "--once", "--json")
    assert again.code == 0 and "nothing new" in " ".join(_last_json(again.out)["reasons"])


def test_retrain_admits_a_candidate_trained_on_the_new_periods(
    project: Project, served: Served
) -> None:
    project.set_min_gain(-100.0)
    res = project.run("retrain", "sales", "--json")
    assert res.code == 0, res.text
    outcome = json.loads(res.out.strip().splitlines()[0])
    assert outcome["status"] == "passed" and outcome["version"] == 3
    assert "new_labels" in {t["kind"] for t in outcome["triggers"]}
    admitted = [e for e in _audit(project, "admit") if e.get("version") == 3]
    assert admitted and admitted[-1]["evidence"]["transition"]["to"] == "challenger", admitted
