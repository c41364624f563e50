"""Explanations add up to the model's output; CLI and REST route; global importance."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from keizoku.cli import app
from keizoku.errors import DataError
from keizoku.evaluation.explain import (
    _explain_sampling,
    encoded_to_feature,
    global_importance,
)
from keizoku.registry.models import load_model, version_artifact
from keizoku.registry.servable import ServableModel
from keizoku.serving.explain_routes import explain_ref

from .conftest import Trained


def _row(trained: Trained, i: int = 0) -> dict[str, Any]:
    record = trained.frame.drop(columns=[trained.target]).iloc[i].to_dict()
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


def _margin(model: ServableModel, row: dict[str, Any], k: int) -> float:
    """The single tree member's raw output for ``row`` (log-odds / raw score / value)."""
    member = model.members[0]
    X = member.encoder.transform_records([row])
    out = np.atleast_1d(member.estimator.booster_.predict(X, raw_score=True)[0])
    return float(out[k] if out.size > 1 else out[0])


def test_tree_shap_adds_up_to_the_log_odds(biased: Trained) -> None:
    model = load_model(biased.ref)
    assert [m.family for m in model.members] == ["lightgbm"]
    for i in (0, 7, 42):
        row = _row(biased, i)
        result = explain_ref(biased.ref, row, top=2)
        assert result["method"] == "tree_shap"
        assert result["space"] == "log-odds"
        total = result["expected_value"] + sum(c["contribution"] for c in result["contributions"])
        total += result["rest"]
        assert total == pytest.approx(result["output"], abs=1e-9)
        assert result["output"] == pytest.approx(_margin(model, row, 1), abs=1e-6)
        p1 = model.predict_raw_records([row])[0, 1]
        assert 1 / (1 + np.exp(-result["output"])) == pytest.approx(p1, abs=1e-6)
        shown = [abs(c["contribution"]) for c in result["contributions"]]
        assert shown == sorted(shown, reverse=True) and len(shown) == 2


def test_sampling_shapley_adds_up_to_the_probability(biased: Trained) -> None:
    model = load_model(biased.ref)
    background = pd.DataFrame(
        json.loads(version_artifact(biased.ref, "background.json").read_text())
    )
    row = _row(biased, 3)
    out = _explain_sampling(model, row, background, 1)
    p1 = model.predict_raw_records([row])[0, 1]
    assert out["space"] == "probability"
    assert out["expected"] + out["phi"].sum() == pytest.approx(p1, abs=1e-9)
    # the sensitive column is not a feature and gets no contribution
    assert "group" not in model.feature_names and len(out["phi"]) == 3


@pytest.mark.parametrize("which", ["binary", "multiclass", "regression"])
def test_every_model_explains_additively(which: str, request: pytest.FixtureRequest) -> None:
    trained: Trained = request.getfixturevalue(which)
    model = load_model(trained.ref)
    row = _row(trained, 5)
    result = explain_ref(trained.ref, row, top=200)
    total = result["expected_value"] + sum(c["contribution"] for c in result["contributions"])
    assert total == pytest.approx(result["output"], abs=1e-9)
    raw = model.predict_raw_records([row])[0]
    if result["method"] == "sampling_shapley":
        if model.task == "regression":
            expected = raw
        else:
            expected = raw[[str(c) for c in model.classes or []].index(result["output_class"])]
        assert result["output"] == pytest.approx(float(expected), abs=1e-6)
    assert {c["feature"] for c in result["contributions"]} == set(model.feature_names)


def test_explain_cli_prints_contributions(biased: Trained) -> None:
    row = json.dumps({"x1": 1.5, "x2": -0.2, "region": "south"})
    result = CliRunner().invoke(app, ["explain", biased.ref, "--row", row, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["model"] == "ev-biased" and body["space"] == "log-odds"
    assert [c["feature"] for c in body["contributions"]][0] in ("x1", "region")


def test_explain_cli_row_file_and_bad_json(biased: Trained, tmp_path: Any) -> None:
    path = tmp_path / "row.json"
    path.write_text(json.dumps([{"x1": 0.1, "x2": 0.3, "region": "north"}]))
    ok = CliRunner().invoke(app, ["explain", biased.ref, "--row-file", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "expected value" in ok.output
    bad = CliRunner().invoke(app, ["explain", biased.ref, "--row", "{x1: 1}"])
    assert "The row is not valid JSON" in str(bad.exception)


def test_unknown_column_is_named_with_a_suggestion(biased: Trained) -> None:
    with pytest.raises(DataError) as info:
        explain_ref(biased.ref, {"x_1": 1.0})
    assert info.value.message.startswith(
        "Invalid request: field 'x_1': unknown field; did you mean 'x1'? (value 1.0) and 3 "
        "more problem(s). Send the value the schema allows"
    )


def test_missing_feature_is_refused_unless_allowed(biased: Trained) -> None:
    row = {"x1": 0.5, "x2": 0.1}
    with pytest.raises(DataError) as info:
        explain_ref(biased.ref, row)
    assert info.value.message.startswith("Invalid request: field 'region': field required.")
    result = explain_ref(biased.ref, row, allow_unseen=True)
    assert result["missing_features"] == ["region"]
    assert result["warnings"]["allowed"] == {"missing": 1}


@contextlib.contextmanager
def _client() -> Iterator[TestClient]:
    """The real app (its guard, its one error handler) serving the explained model."""
    from keizoku.serving.app import ServeOptions, create_app

    options = ServeOptions(models=["ev-biased"], poll_interval_s=0, prediction_log=False)
    with TestClient(create_app(options)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield client


def test_rest_explain_route(biased: Trained) -> None:
    with _client() as client:
        _rest_explain(client, biased)


def _rest_explain(client: TestClient, biased: Trained) -> None:
    resp = client.post(
        "/v1/models/ev-biased@champion/explain",
        json={"row": {"x1": 0.5, "x2": 0.1, "region": "north"}, "top": 2},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == biased.version and len(body["contributions"]) == 2
    total = body["expected_value"] + sum(c["contribution"] for c in body["contributions"])
    assert total + body["rest"] == pytest.approx(body["output"], abs=1e-9)
    missing = client.post("/v1/models/nope/explain", json={"row": {"x1": 1}})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = client.post("/v1/models/ev-biased/explain", json={"row": {"x1": "abc"}})
    assert bad.status_code == 422
    assert bad.json()["message"].startswith(
        "Invalid request: field 'x1': expected a number, got string (value 'abc')"
    )
    malformed = client.post("/v1/models/ev-biased/explain", content=b"{")
    assert malformed.status_code == 422 and malformed.json()["error"] == "validation"


def test_rest_explain_requires_a_key_once_keys_exist(biased: Trained) -> None:
    from keizoku.auth import create_key, revoke_key

    token = create_key("ev-explain", "predict")
    try:
        body = {"row": {"x1": 0.5, "x2": 0.1, "region": "north"}}
        with _client() as client:
            denied = client.post("/v1/models/ev-biased/explain", json=body)
            assert denied.status_code == 401
            assert denied.json()["error"] == "unauthorized"
            allowed = client.post(
                "/v1/models/ev-biased/explain", json=body, headers={"X-API-Key": token}
            )
            assert allowed.status_code == 200
    finally:
        revoke_key("ev-explain")


def test_global_importance_finds_the_planted_signal(biased: Trained) -> None:
    importance = json.loads(version_artifact(biased.ref, "importance.json").read_text())
    ranked = [f["feature"] for f in importance["features"]]
    assert set(ranked) == {"x1", "x2", "region"}
    assert ranked[-1] == "x2"  # x1 (weight 1) and the proxy of the flipped group beat x2 (0.5)
    assert importance["members"][0]["method"] == "mean |SHAP| (log-odds)"
    assert sum(f["share"] for f in importance["features"]) == pytest.approx(1.0)


def test_one_hot_parts_sum_back_to_their_feature(binary: Trained) -> None:
    names = ["age", "sex=male", "sex=female", "sex=<missing>", "when__year", "age_group"]
    features = ["age", "sex", "when", "age_group"]
    assert encoded_to_feature(names, features) == [
        "age",
        "sex",
        "sex",
        "sex",
        "when",
        "age_group",
    ]
    model = load_model(binary.ref)
    frame = binary.frame.head(200)
    from keizoku.training.context import encode_target
    from keizoku.training.metrics import get_metric

    y, _ = encode_target(frame["target"], model.schema)
    imp = global_importance(model, frame, y, get_metric(None, "binary"), budget_s=5)
    assert {f["feature"] for f in imp["features"]} == set(model.feature_names)
    assert "site" not in {f["feature"] for f in imp["features"]}
