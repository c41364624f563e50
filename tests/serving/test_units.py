"""Pieces of the server that need no server: split parsing, routing, validation, metrics."""

from __future__ import annotations

import random
from typing import Any

import pytest

from keizoku.data.schema import Column, Schema
from keizoku.errors import UserInputError
from keizoku.lifecycle.deployment import Deployment, choose_variant, parse_split
from keizoku.serving.metrics import Metrics
from keizoku.serving.schemas import RecordValidator, example_record, record_model
from keizoku.serving.security import is_loopback

SCHEMA = Schema(
    columns=[
        Column(name="age", kind="numeric", dtype="float", nullable=True, min=0, max=90),
        Column(
            name="plan",
            kind="categorical",
            dtype="str",
            nullable=False,
            categories=["basic", "pro"],
        ),  # fmt: skip
        Column(name="seats", kind="categorical", dtype="int", nullable=False, categories=[1, 2]),
        Column(name="signup", kind="datetime", dtype="str", nullable=False),
        Column(name="uid", kind="id", role="id", dtype="str", nullable=False),
        Column(name="churn", kind="categorical", role="target", dtype="int", nullable=False),
    ],
    target="churn",
    task="binary",
)


def test_parse_split() -> None:
    assert parse_split("champion=90, challenger=10") == {"champion": 90.0, "challenger": 10.0}
    with pytest.raises(UserInputError) as err:
        parse_split("champion=90,challenger")
    assert err.value.message == (
        "--split part 'challenger' is not ALIAS=WEIGHT with a weight >= 0; write e.g. "
        "--split champion=90,challenger=10."
    )


def test_deployment_rejects_zero_total_and_sets_entity_key() -> None:
    with pytest.raises(ValueError, match="add up to 0"):
        Deployment(split={"champion": 0})
    dep = Deployment(split={"champion": 1, "challenger": 1}, sticky_key="cid", shadow="shadowy")
    assert dep.entity_key == "cid"
    assert dep.aliases == ["champion", "challenger", "shadowy"]


def test_choose_variant_sticky_and_weighted() -> None:
    split = {"champion": 70.0, "challenger": 30.0}
    assert {choose_variant(split, "customer-7") for _ in range(20)} == {
        choose_variant(split, "customer-7")
    }
    rng = random.Random(0)
    picks = [choose_variant(split, rng=rng) for _ in range(10_000)]
    assert 2_800 < picks.count("challenger") < 3_200
    assert choose_variant({"champion": 0.0, "challenger": 1.0}) == "challenger"


def test_validator_accepts_a_good_record_and_the_example() -> None:
    v = RecordValidator(SCHEMA, entity_key="customer")
    good = {"age": None, "plan": "pro", "seats": 2.0, "signup": "2024-01-31", "customer": 5}
    assert v.errors(good) == []
    assert v.errors(example_record(SCHEMA)) == []


@pytest.mark.parametrize(
    ("change", "field", "msg"),
    [
        ({"plan": "gold"}, "plan", "unseen category"),
        ({"seats": "2"}, "seats", "expected a number (one of the categories), got string"),
        ({"seats": True}, "seats", "expected a number (one of the categories), got boolean"),
        ({"signup": "yesterday"}, "signup",
         "expected an ISO 8601 date/time such as '2024-01-31T12:00:00'"),
        ({"uid": {"x": 1}}, "uid", "expected a single value, got object"),
        ({"churn": 1}, "churn", "unknown field"),
        ({"Age": 3}, "Age", "unknown field; did you mean 'age'?"),
    ],
)  # fmt: skip
def test_validator_messages(change: dict[str, Any], field: str, msg: str) -> None:
    v = RecordValidator(SCHEMA)
    record = {"age": 30, "plan": "pro", "seats": 1, "signup": "2024-01-31", **change}
    errors = [e for e in v.errors(record) if e["field"] == field]
    assert [e["msg"] for e in errors] == [msg]


def test_record_model_describes_the_schema() -> None:
    schema = record_model("my-model", SCHEMA).model_json_schema()
    assert schema["title"] == "MyModelRecord"
    assert set(schema["required"]) == {"age", "plan", "seats", "signup"}
    assert schema["properties"]["plan"]["enum"] == ["basic", "pro"]
    assert schema["additionalProperties"] is False
    assert "churn" not in schema["properties"]


def test_metrics_render() -> None:
    m = Metrics()
    m.request("m", "1", "champion", 200, 0.002)
    m.predicted("m", 1, "champion", 3, shadow=False)
    text = m.render()
    assert 'keizoku_requests_total{model="m",version="1",variant="champion",status="200"} 1' in text
    assert (
        'keizoku_request_duration_seconds_bucket{model="m",version="1",variant="champion",'
        'le="0.0025"} 1'
    ) in text
    assert (
        'keizoku_predictions_total{model="m",version="1",variant="champion",shadow="false"} 3'
        in text
    )


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_the_app_serves_each_routers_own_routes() -> None:
    """create_app adds every keizoku router's routes themselves (built when imported), in
    order, not copies that recent FastAPI builds again at a server's first requests; what
    they answer and the OpenAPI document are the serving tests' subject."""
    from keizoku.console import router as console_router
    from keizoku.serving import (
        explain_routes,
        feedback_routes,
        forecast_routes,
        image_routes,
        openai_routes,
        rag_routes,
        routes,
    )
    from keizoku.serving.app import ServeOptions, create_app

    app = create_app(ServeOptions(prediction_log=False))
    routers = [routes.router, feedback_routes.router, explain_routes.router,
               forecast_routes.router, image_routes.router, rag_routes.router,
               openai_routes.router, console_router]  # fmt: skip
    expected = [route for router in routers for route in router.routes]
    served = [route for route in app.routes if any(route is r for r in expected)]
    assert served == expected and len(expected) > 30
