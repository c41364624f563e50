"""Actuals for a forecasting model through ``POST /v1/models/{name}/feedback``, with the real
executable, registry and server: bad bodies are 422 naming the field and value and store
nothing; good ones reach ``keizoku monitor`` with the numbers ``keizoku feedback`` (the CLI
path) gives for the same actuals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import text_support
from kzsupport import Server

HORIZON = 3
HISTORY = 48
SHOPS = ("east", "west")


def _sales(periods: int) -> pd.DataFrame:
    """Two shops' monthly sales, trend and season and noise (the same draw for any length)."""
    rng = np.random.default_rng(7)
    t = np.arange(HISTORY + HORIZON)
    frames = [
        pd.DataFrame({
            "shop": shop,
            "month": pd.date_range("2016-01-01", periods=len(t), freq="MS").strftime("%Y-%m-%d"),
            "sales": (30 + 15 * j + 0.5 * t + 5 * np.cos(2 * np.pi * t / 12)
                      + rng.normal(0, 1.5, len(t))).round(2),
        })[:periods]
        for j, shop in enumerate(SHOPS)
    ]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _actuals() -> list[dict[str, Any]]:
    came_true = _sales(HISTORY + HORIZON).groupby("shop").tail(HORIZON)
    return json.loads(came_true.to_json(orient="records"))  # type: ignore[no-any-return]


def _monitor(project: text_support.Project) -> dict[str, Any]:
    res = project.run("monitor", "sales", "--json")
    assert res.code in (0, 11), res.text
    return json.loads(res.out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> text_support.Project:
    """Trained, and the next HORIZON months of both shops forecast by the server (logged)."""
    p = text_support.Project(tmp_path_factory.mktemp("forecast-rest"))
    _sales(HISTORY).to_csv(p.root / "sales.csv", index=False)
    assert p.run("init", "sales.csv", "--target", "sales", "--id", "shop").code == 0
    spec = yaml.safe_load((p.root / "keizoku.yaml").read_text())
    spec["forecast"].update(horizon=HORIZON, cv={"folds": 2},
                            models=["seasonal_naive", "lightgbm"])  # fmt: skip
    spec.setdefault("train", {})["max_trials"] = 2  # no clock
    (p.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    assert p.run("train").code == 0
    server = Server(p.root, env=p.env).wait_ready()
    try:
        history = json.loads(_sales(HISTORY).to_json(orient="records"))
        res = server.client.post("/v1/models/sales/forecast", json={"history": history})
        assert res.status_code == 200, res.text
    finally:
        assert server.stop() == 0  # the log is on disk
    assert len(res.json()["forecasts"]) == 2 * HORIZON
    return p


@pytest.fixture(scope="module")
def twin(project: text_support.Project, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A copy of the project before any actual arrived: the CLI path runs there."""
    root = tmp_path_factory.mktemp("forecast-rest-cli") / "p"
    shutil.copytree(project.root, root)
    return text_support.Project(root)


@pytest.fixture(scope="module")
def keyed(project: text_support.Project, twin: Any) -> Any:
    """The server on a non-loopback bind (a key is required) and a predict key."""
    made = project.run("keys", "create", "--name", "fc-rest", "--role", "predict")
    assert made.code == 0, made.text
    token = next(w for w in made.out.split() if w.startswith("kz"))
    server = Server(project.root, "--host", "0.0.0.0", env=project.env).wait_ready()
    server.client.headers["Authorization"] = f"Bearer {token}"
    yield server
    assert server.stop() == 0


def _post(server: Server, body: Any) -> Any:
    return server.client.post("/v1/models/sales/feedback", json=body)


@pytest.mark.parametrize(
    ("change", "field", "value", "words"),
    [
        ({"shop": "north"}, "shop", "north", "neither trained on nor forecast"),
        ({"month": "2020-01-15"}, "month", "2020-01-15", "not on the model's 'MS' grid"),
        ({"sales": "lots"}, "sales", "lots", "not a number"),
        ({"month": "2030-01-01"}, "month", "2030-01-01", "no forecast was logged"),
        ({"month": None}, "month", None, "cannot be read as a time"),
    ],
)
def test_a_bad_actual_is_422_naming_field_and_value(
    keyed: Server, change: dict[str, Any], field: str, value: Any, words: str
) -> None:
    good = _actuals()
    bad = {**good[1], **change}
    res = _post(keyed, {"items": [good[0], bad]})  # one good, one bad: nothing stored
    assert res.status_code == 422, res.text
    answer = res.json()
    assert answer["error"] == "validation" and "nothing was stored" in answer["message"]
    assert "Actual 2 for 'sales'" in answer["message"] and words in answer["message"]
    (problem,) = answer["details"]
    assert problem["loc"] == ["body", 1, field] and problem["field"] == field
    assert problem["value"] == value


def test_a_record_without_the_time_column_is_422_naming_it(keyed: Server) -> None:
    res = _post(keyed, {"request_id": "r1", "label": 3.0})  # the tabular form
    assert res.status_code == 422, res.text
    assert res.json()["details"][0]["field"] == "shop"
    res = _post(keyed, [{"shop": "east", "sales": 3.0}])
    assert res.status_code == 422 and "lacks field 'month'" in res.json()["message"]


def test_without_a_key_actuals_are_401(keyed: Server) -> None:
    res = keyed.client.post(
        "/v1/models/sales/feedback", json=_actuals(), headers={"Authorization": ""}
    )
    assert res.status_code == 401, res.text
    unserved = keyed.client.post("/v1/models/other/feedback", json=_actuals())
    assert unserved.status_code == 404, unserved.text


def test_rest_actuals_give_monitor_the_numbers_of_the_cli_path(
    project: text_support.Project, twin: Any, keyed: Server
) -> None:
    assert _monitor(project)["matched"] == 0  # every bad body above stored nothing
    res = _post(keyed, _actuals())
    assert res.status_code == 200, res.text
    assert res.json() == {"model": "sales", "stored": 2 * HORIZON}
    live = _monitor(project)
    assert live["source"] == "feedback" and live["matched"] == 2 * HORIZON
    assert live["mase"] is not None and live["mase"] > 0

    pd.DataFrame(_actuals()).to_csv(Path(twin.root) / "actuals.csv", index=False)
    cli = twin.run("feedback", "sales", "actuals.csv", "--json")
    assert cli.code == 0, cli.text
    by_cli = _monitor(twin)
    for key in ("matched", "mae", "rmse", "mase", "coverage", "mae_by_step"):
        assert live[key] == by_cli[key], key
    lines = project.run("history", "sales", "--json").out.splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(e.get("action") == "feedback" and e.get("actor") == "key:fc-rest" for e in entries)
