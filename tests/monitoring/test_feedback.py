"""Feedback: validation, storage, the REST route and the CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from keizoku.errors import DataError
from keizoku.monitoring.feedback import feedback_glob, record_feedback
from keizoku.serving.feedback_routes import router


def _count(model: str) -> list[tuple]:
    glob = feedback_glob(model)
    return (
        duckdb.connect()
        .execute(
            f"select request_id, entity_id, label, label_num from read_parquet('{glob}') "
            "order by request_id nulls first"
        )
        .fetchall()
    )


def test_record_feedback_stores_labels(keizoku_home: Path) -> None:
    n = record_feedback("m", [{"request_id": "r1", "label": 1}, {"entity_id": "e2", "label": "no"}])
    assert n == 2
    assert _count("m") == [(None, "e2", "no", None), ("r1", None, "1", 1.0)]


def test_feedback_without_id_names_the_record_and_fix(keizoku_home: Path) -> None:
    with pytest.raises(DataError) as exc:
        record_feedback("m", [{"label": 1}])
    assert exc.value.message == (
        "Feedback record 0 ({'label': 1}) has neither 'request_id' nor 'entity_id'. "
        "Give the request id returned with the prediction, or the entity id sent with it."
    )


def test_feedback_route_accepts_one_or_many(keizoku_home: Path) -> None:
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    r = client.post("/v1/models/m/feedback", json={"request_id": "a", "label": 0})
    assert r.status_code == 200 and r.json() == {"model": "m", "stored": 1}
    r = client.post("/v1/models/m/feedback", json={"items": [{"request_id": "b", "label": 1}]})
    assert r.json()["stored"] == 1
    r = client.post("/v1/models/m/feedback", json=[{"label": 1}])
    assert r.status_code == 422 and r.json()["error"] == "bad_data"
    assert len(_count("m")) == 2


def test_feedback_route_needs_a_key_once_keys_exist(keizoku_home: Path) -> None:
    from keizoku.auth import create_key

    token = create_key("svc", "predict")
    client = TestClient(FastAPI())
    client.app.include_router(router)  # type: ignore[attr-defined]
    assert (
        client.post("/v1/models/m/feedback", json={"request_id": "a", "label": 0}).status_code
        == 401
    )
    r = client.post(
        "/v1/models/m/feedback",
        json={"request_id": "a", "label": 0},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200


def test_feedback_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "labels.csv").write_text("request_id,label\nr1,1\nr2,0\n")
    result = cli("feedback", "m", "labels.csv")
    assert result.code == 0, result.text
    assert "Stored 2 labels for 'm'" in result.text
