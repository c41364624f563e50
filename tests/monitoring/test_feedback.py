"""Feedback is validated before anything is stored: model, request/entity ids, labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from keizoku.errors import DataError, NotFoundError, UserInputError
from keizoku.monitoring.feedback import feedback_glob, record_feedback
from kzsupport import log_prediction
from rollout_support import MODEL, cli, frame, trained_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from keizoku.monitoring.log import PredictionLog

    inputs = frame().drop(columns="species").iloc[0].to_dict()
    with trained_project(tmp_path_factory.mktemp("feedback")) as root:
        with PredictionLog() as log:
            for i in range(5):
                log_prediction(
                    log, request_id=f"r{i}", ts=1e9 + i, model=MODEL, version=1,
                    variant="champion", inputs=inputs, prediction="Adelie", latency_ms=1.0,
                    entity_id=f"e{i}",
                )  # fmt: skip
        yield root


def _stored() -> list[tuple]:
    glob = feedback_glob(MODEL)
    sql = f"select request_id, entity_id, label from read_parquet('{glob}') order by all"
    try:
        return duckdb.connect().execute(sql).fetchall()
    except duckdb.IOException:
        return []


def test_unknown_ids_and_labels_are_rejected_and_nothing_is_stored(project: Path) -> None:
    with pytest.raises(DataError) as exc:
        record_feedback(MODEL, [{"request_id": "r1", "label": "Adelie"},
                                {"request_id": "nope", "label": "Adelie"}])  # fmt: skip
    assert exc.value.message.startswith(
        "Feedback record 2 for 'peng' request_id 'nope' is not in the prediction log"
    )
    assert exc.value.message.endswith("1 of 2 record(s) rejected; nothing was stored.")
    with pytest.raises(DataError) as exc:
        record_feedback(MODEL, [{"request_id": "r1", "label": "maybe"}])
    assert "label 'maybe' is not one of the model's classes ('Adelie', 'Chinstrap', " in (
        exc.value.message
    )
    with pytest.raises(DataError, match="entity_id 'e99' was never logged"):
        record_feedback(MODEL, [{"entity_id": "e99", "label": "Adelie"}])
    with pytest.raises(DataError, match="has neither 'request_id' nor 'entity_id'"):
        record_feedback(MODEL, [{"label": "Adelie"}])
    assert _stored() == []


@pytest.mark.parametrize("name", ["..", "ペンギン", "", "x" * 300, "a/b"])
def test_bad_model_names_write_nothing(project: Path, name: str) -> None:
    before = sorted(p for p in (project / ".keizoku").rglob("*") if "mlflow" not in p.name)
    with pytest.raises(UserInputError, match="is not valid: use 1-64 ASCII letters"):
        record_feedback(name, [{"request_id": "r1", "label": "Adelie"}])
    with pytest.raises(NotFoundError, match="No registered model named 'ghost'"):
        record_feedback("ghost", [{"request_id": "r1", "label": "Adelie"}])
    after = sorted(p for p in (project / ".keizoku").rglob("*") if "mlflow" not in p.name)
    assert after == before


def test_rest_feedback_gets_422_naming_the_id(project: Path) -> None:
    from keizoku.serving.feedback_routes import router

    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    r = client.post(f"/v1/models/{MODEL}/feedback", json={"request_id": "zzz", "label": "Adelie"})
    assert r.status_code == 422 and r.json()["error"] == "bad_data"
    assert "request_id 'zzz' is not in the prediction log" in r.json()["message"]
    r = client.post("/v1/models/ghost/feedback", json={"request_id": "r1", "label": "Adelie"})
    assert r.status_code == 404
    assert _stored() == []


def test_cli_reports_each_rejected_row_stores_the_rest_and_exits_2(project: Path) -> None:
    from keizoku import audit

    (project / "labels.csv").write_text(
        "request_id,entity_id,label\nr2,, Gentoo \nr3,,maybe\nghost,,Adelie\n,e4,Chinstrap\n"
    )
    out = cli(project, "feedback", MODEL, "labels.csv")
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "Stored 2 labels for 'peng'." in text
    assert "Rejected 2 record(s), not stored:" in text
    assert "record 2: label 'maybe' is not one of the model's classes" in text
    assert "record 3: request_id 'ghost' is not in the prediction log" in text
    assert "Traceback" not in out.stderr
    assert set(_stored()) == {(None, "e4", "Chinstrap"), ("r2", None, "Gentoo")}
    entry = audit.read(MODEL, actions=("feedback",))[-1]
    assert (entry["evidence"]["stored"], entry["evidence"]["rejected"]) == (2, 2)
    out = cli(project, "feedback", "..", "labels.csv")
    assert out.returncode == 2 and "Model name '..' is not valid" in out.stderr
