"""The session's server over loopback: predictions, validation, routes, swaps, routing."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from kzsupport import json_records

MODEL = "clinic"
PREDICT = f"/v1/models/{MODEL}/predict"


def records(frame: pd.DataFrame, n: int, start: int = 0) -> list[dict[str, Any]]:
    return json_records(frame.drop(columns=["malignant"]).iloc[start : start + n])


def _post(srv: Any, body: Any, **kw: Any) -> httpx.Response:
    return srv.client.post(PREDICT, json=body, **kw)


def _raw(srv: Any, content: bytes | str) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return srv.client.post(PREDICT, content=content, headers=headers)


def _wait(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# ------------------------------------------------------------------------ predictions


def test_predictions_equal_keizoku_predict(server: Any, trained: dict[str, Any]) -> None:
    from keizoku.cli import app

    frame: pd.DataFrame = trained["frame"]
    root: Path = trained["root"]
    rows = frame.drop(columns=["malignant"]).iloc[:300]
    rows.to_csv(root / "rows.csv", index=False)
    out = root / "rows-scored.csv"
    result = CliRunner().invoke(
        app, ["predict", str(root / "rows.csv"), "--model", f"{MODEL}@champion", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out)

    small = _post(server, records(frame, 40))  # scored record by record, without pandas
    large = _post(server, records(frame, 300))  # scored as one DataFrame
    assert small.status_code == 200, small.text
    assert large.status_code == 200, large.text
    assert small.json()["model"] == MODEL
    preds = small.json()["predictions"] + large.json()["predictions"]
    assert len(preds) == 340
    assert len({p["request_id"] for p in preds}) == 340
    for j, p in enumerate(preds):
        i = j if j < 40 else j - 40
        assert p["version"] == 1 and p["variant"] == "champion"
        assert p["prediction"] == batch["prediction"].iloc[i]
        for cls in ("0", "1"):
            assert math.isclose(p["probabilities"][cls], batch[f"proba_{cls}"].iloc[i],
                                rel_tol=1e-9, abs_tol=1e-12)  # fmt: skip

    for i in range(3):  # the single-record fast path agrees too
        one = _post(server, records(frame, 1, start=i)[0]).json()
        assert one["prediction"] == preds[i]["prediction"]
        assert math.isclose(one["probabilities"]["1"], preds[i]["probabilities"]["1"],
                            rel_tol=1e-9)  # fmt: skip


def test_wrapped_shapes(server: Any, trained: dict[str, Any]) -> None:
    rec = records(trained["frame"], 1)[0]
    one = _post(server, {"record": rec}).json()
    many = _post(server, {"records": [rec, rec]}).json()
    assert one["prediction"] == many["predictions"][0]["prediction"]
    assert len(many["predictions"]) == 2


# ------------------------------------------------------------------------- validation


def _base(trained: dict[str, Any]) -> dict[str, Any]:
    return records(trained["frame"], 1)[0]


def test_missing_field_message(server: Any, trained: dict[str, Any]) -> None:
    rec = _base(trained)
    del rec["radius"]
    resp = _post(server, rec)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "validation"
    assert body["message"] == (
        "Invalid request: field 'radius': field required. See 'details'; the schema is at "
        "/openapi.json. To score unseen categories and missing fields anyway, add "
        "?allow_unseen=true."
    )
    assert body["details"][0]["kind"] == "missing"
    assert body["details"][0]["loc"] == ["body", "radius"]
    assert "training range" in body["details"][0]["allowed"]


@pytest.mark.parametrize(
    ("field", "value", "msg", "allowed"),
    [
        ("colour", "red", "unknown field", None),
        ("radius", "abc", "expected a number, got string", None),
        ("radius", "NaN", "expected a number, got string", None),
        ("radius", None, "null is not allowed", None),
        ("radius", {"a": 1}, "expected a number, got object", None),
        ("radius", 10**400, "number is too large (the limit is ±1e+15)", None),
        ("radius", -1.5e300, "number is too large (the limit is ±1e+15)", None),
        ("grade", "extreme", "unseen category", ["high", "low", "mid"]),
        ("grade", 3, "expected a string (one of the categories), got number", None),
        ("site", 9, "unseen category", [1, 2, 3, 4]),
        ("note", ["a", "b"], "expected a string, got array", None),
        ("note", True, "expected a string, got boolean", None),
    ],
)
def test_bad_field_is_422(
    server: Any, trained: dict[str, Any], field: str, value: Any, msg: str, allowed: Any
) -> None:
    rec = {**_base(trained), field: value}
    resp = _post(server, rec)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["details"][0]
    assert detail["field"] == field
    assert detail["msg"] == msg
    assert "value" in detail
    if allowed is not None:
        assert sorted(detail["allowed"], key=str) == sorted(allowed, key=str)
    assert f"field '{field}'" in resp.json()["message"]


def test_every_problem_of_every_record_is_listed(server: Any, trained: dict[str, Any]) -> None:
    good = _base(trained)
    bad = {**good, "grade": "x", "radius": "y"}
    resp = _post(server, [good, bad])
    assert resp.status_code == 422
    locs = [d["loc"] for d in resp.json()["details"]]
    assert ["body", 1, "grade"] in locs and ["body", 1, "radius"] in locs


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "The request body is empty"),
        ("   ", "The request body is empty"),
        ("{bad", "not valid JSON"),
        ('{"radius": NaN}', "not valid JSON"),
        ('{"radius": Infinity}', "not valid JSON"),
        ("[]", "The list of records is empty"),
        ('"text"', "JSON str"),
        ("42", "JSON int"),
        ("null", "JSON null"),
        ("[1, 2]", "expected a record (JSON object), got number"),
        ("[" * 50_000 + "]" * 50_000, "not valid JSON"),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_body_is_422(server: Any, content: str, needle: str) -> None:
    resp = _raw(server, content.encode("latin-1") if content == "\xff\xfe" else content)
    assert resp.status_code == 422, resp.text
    assert needle in resp.text


def test_huge_float_is_422(server: Any, trained: dict[str, Any]) -> None:
    rec = json.dumps(_base(trained)).replace('"radius": ', '"radius": 1e400, "x_": ', 1)
    resp = _raw(server, rec)
    assert resp.status_code == 422
    fields = {d["field"]: d["msg"] for d in resp.json()["details"]}
    assert fields["radius"] == "expected a finite number"


def test_too_many_records_is_413(server: Any) -> None:
    resp = _post(server, [{}] * 10_001)
    assert resp.status_code == 413
    assert "the limit is 10000" in resp.json()["message"]


def test_unknown_model_is_404_with_hint(server: Any) -> None:
    resp = server.client.post("/v1/models/clinik/predict", json={})
    assert resp.status_code == 404
    assert "Did you mean 'clinic'?" in resp.json()["message"]


# ------------------------------------------------------------------------ other routes


def test_health_ready_and_models(server: Any) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    assert server.client.get("/readyz").json() == {
        "ready": True,
        "models": {MODEL: {"champion": 1}},
    }
    listed = server.client.get("/v1/models").json()["models"]
    assert [m["name"] for m in listed] == [MODEL]
    detail = server.client.get(f"/v1/models/{MODEL}").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["aliases"] == ["champion"]
    assert detail["versions"][1]["aliases"] == ["challenger"]
    assert detail["classes"] == [0, 1]
    kinds = {c["name"]: c["kind"] for c in detail["schema"]}
    assert kinds["grade"] == "categorical" and kinds["note"] == "text"
    assert server.client.get("/v1/models/nope").status_code == 404


def test_admin_routes_off_without_keys(server: Any) -> None:
    resp = server.client.post(f"/v1/admin/models/{MODEL}/reload")
    assert resp.status_code == 403
    assert "keizoku keys create --role admin" in resp.json()["message"]


def test_openapi_has_per_model_schema(server: Any) -> None:
    doc = server.client.get("/openapi.json").json()
    op = doc["paths"][PREDICT]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["anyOf"][0]["$ref"]
    record = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert record["additionalProperties"] is False
    assert set(record["required"]) == {"radius", "texture", "smoothness", "grade", "site", "note"}
    assert record["properties"]["grade"]["enum"] == ["high", "low", "mid"]
    assert {"type": "null"} in record["properties"]["texture"]["anyOf"]
    assert record["properties"]["radius"]["type"] == "number"
    example = record["examples"][0]
    assert example["grade"] == "high" and isinstance(example["radius"], float)
    assert _post(server, example).status_code == 200  # the documented example is valid
    assert server.client.get("/docs").status_code == 200


def test_metrics_exposition(server: Any, trained: dict[str, Any]) -> None:
    _post(server, _base(trained))
    _post(server, {})
    text = server.client.get("/metrics").text
    assert 'keizoku_requests_total{model="clinic",version="1",variant="champion",status="200"}' in (
        text
    )
    assert 'keizoku_requests_total{model="clinic",version="-",variant="-",status="422"}' in text
    assert "keizoku_request_duration_seconds_bucket{" in text
    assert 'le="+Inf"' in text
    assert 'keizoku_model_version{model="clinic",alias="champion"} 1' in text


# ------------------------------------------------------------------ hot swap and routing


def test_promote_under_load_drops_nothing(server: Any, trained: dict[str, Any]) -> None:
    from keizoku.registry.models import set_alias

    rec = _base(trained)
    results: list[tuple[int, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                r = c.post(PREDICT, json=rec)
                results.append((r.status_code, r.json().get("version")))

    def answered(n: int) -> None:
        """Until ``n`` more requests are answered: the load goes on through each state."""
        done = len(results) + n
        _wait(lambda: len(results) >= done)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        answered(20)
        set_alias(MODEL, "champion", 2)
        _wait(lambda: any(v == 2 for _, v in results[-20:]))
        answered(20)
        set_alias(MODEL, "champion", 1)
        _wait(lambda: results[-1][1] == 1)
        answered(20)
    finally:
        stop.set()
        for t in threads:
            t.join()
        set_alias(MODEL, "champion", 1)
    assert len(results) > 50
    assert all(status == 200 for status, _ in results), {s for s, _ in results}
    versions = [v for _, v in results]
    assert set(versions) == {1, 2}


def _deploy(*args: str) -> None:
    from keizoku.cli import app
    from keizoku.registry.backend import client

    # only a version that passed its gates may get traffic (deploy refuses others)
    client().set_model_version_tag(MODEL, "2", "keizoku.gate", "passed")
    result = CliRunner().invoke(app, ["deploy", MODEL, *args, "--no-wait"])
    assert result.exit_code == 0, result.output


def test_split_shares_and_sticky_keys(server: Any, trained: dict[str, Any]) -> None:
    _deploy("--split", "champion=70,challenger=30", "--sticky-key", "customer_id")
    try:
        _wait(lambda: server.client.get("/readyz").json()["models"][MODEL].get("challenger") == 2)
        rec = _base(trained)
        rec.pop("customer_id")
        batch = [rec] * 1000  # no entity id: random per record
        preds = _post(server, batch).json()["predictions"]
        n = sum(p["variant"] == "challenger" for p in preds)
        sd = math.sqrt(1000 * 0.3 * 0.7)
        assert abs(n - 300) < 4 * sd, n
        assert all(p["version"] == (2 if p["variant"] == "challenger" else 1) for p in preds)

        seen: dict[str, str] = {}
        for i in range(60):
            body = {**rec, "customer_id": f"cust-{i % 20}"}
            one = _post(server, body).json()
            assert one["entity_id"] == body["customer_id"]
            assert seen.setdefault(body["customer_id"], one["variant"]) == one["variant"]
        assert set(seen.values()) == {"champion", "challenger"}
    finally:
        _deploy("--reset")
    _wait(lambda: server.client.get("/readyz").json()["models"][MODEL] == {"champion": 1})


def test_shadow_logs_both_variants(server: Any, trained: dict[str, Any]) -> None:
    import duckdb

    _deploy("--shadow", "challenger")
    try:
        _wait(lambda: server.client.get("/readyz").json()["models"][MODEL].get("challenger") == 2)
        body = records(trained["frame"], 5, start=100)
        preds = _post(server, body).json()["predictions"]
        assert {p["variant"] for p in preds} == {"champion"}
        ids = {p["request_id"] for p in preds}
        glob = str(Path(trained["home"]) / "predictions" / MODEL / "*.parquet")

        def rows() -> list[tuple[Any, ...]]:
            try:
                return duckdb.sql(  # type: ignore[union-attr]
                    f"select request_id, shadow, variant, version from read_parquet('{glob}')"
                ).fetchall()
            except duckdb.IOException:
                return []

        _wait(lambda: len([r for r in rows() if r[0] in ids]) == 10)
        mine = [r for r in rows() if r[0] in ids]
        assert {(r[1], r[2], r[3]) for r in mine} == {
            (False, "champion", 1),
            (True, "challenger", 2),
        }
    finally:
        _deploy("--reset")
    _wait(lambda: server.client.get("/readyz").json()["models"][MODEL] == {"champion": 1})
