"""The web boundary against the real server: one auth rule, one model set, limits, one validator.

Each test is a defect of issue 11 (and the REST side of issue 10 item 11) that the server
had before the boundary: it answers through ``keizoku serve`` on a loopback port or through
the real ``keizoku`` executable.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from keizoku.auth import create_key, revoke_key
from kzsupport import KEIZOKU_EXE, REPO, copy_live_home, json_records

MODEL = "clinic"
SECRET = "secretmodel"
KEIZOKU = KEIZOKU_EXE


def _record(trained: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return json_records(trained["frame"].drop(columns=["malignant"]).iloc[i : i + 1])[0]


def _keizoku(trained: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEIZOKU, *args],
        cwd=trained["root"],
        env=trained["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _raw_post(port: int, path: str, body: bytes, headers: str = "") -> tuple[int, bytes]:
    """A request sent byte for byte (no client normalises ``..`` away)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


@pytest.fixture(scope="module")
def secret(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A copy of the session's home plus a second model, ``secretmodel`` (the environment).

    A copy, so the session's server (which serves every registered model) never sees it.
    """
    root = tmp_path_factory.mktemp("secret")
    home = root / ".keizoku"
    # by another process: this one has the home's registry open (kzsupport.copy_live_home)
    copy_live_home(Path(trained["home"]), home, "predictions", "feedback", ".*.tmp", "serve-*.log")
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", root / "penguins.csv")
    env = {**trained["env"], "KEIZOKU_HOME": str(home)}
    for args in (
        ["init", "penguins.csv", "--target", "species", "--name", SECRET],
        # any registered model will do (the server must not expose it): the cheapest search
        ["train", "--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1"],
    ):
        out = subprocess.run([KEIZOKU, *args], cwd=root, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    return env


# ---------------------------------------------------------------- which models are served


def test_routes_agree_on_the_served_models(
    make_server: Any, trained: dict[str, Any], secret: dict[str, str]
) -> None:
    srv = make_server("--model", MODEL, "--poll-interval", "0", env=secret).wait_ready()
    home = Path(secret["KEIZOKU_HOME"])
    row = {"species": "x"}
    answers = {
        "predict": srv.client.post(f"/v1/models/{SECRET}/predict", json=row),
        "explain": srv.client.post(f"/v1/models/{SECRET}/explain", json={"row": row}),
        "explain@": srv.client.post(f"/v1/models/{SECRET}@champion/explain", json={"row": row}),
        "feedback": srv.client.post(
            f"/v1/models/{SECRET}/feedback", json={"request_id": "r1", "label": "Adelie"}
        ),
        "detail": srv.client.get(f"/v1/models/{SECRET}"),
    }
    for route, resp in answers.items():
        assert resp.status_code == 404, (route, resp.text)
        assert resp.json()["error"] == "not_found", route
        assert resp.json()["message"].startswith(f"Model '{SECRET}' is not served here."), route
    assert not (home / "feedback" / SECRET).exists()
    ok = srv.client.post(f"/v1/models/{MODEL}/explain", json={"row": _record(trained)})
    assert ok.status_code == 200, ok.text


def _home_files(home: Path) -> list[str]:
    """What keizoku keeps in ``home``: not heartbeats (they come and go), nor SQLite's own
    ``-wal``/``-shm`` files, which exist while any connection to the store is open."""
    return sorted(
        p.name for p in home.iterdir()
        if p.name != "servers" and not p.name.endswith(("-wal", "-shm"))
    )  # fmt: skip


def test_model_names_in_urls_follow_the_name_rule(server: Any, trained: dict[str, Any]) -> None:
    home = Path(trained["home"])
    before = _home_files(home)
    long = "x" * 300
    for name in (long, "ペンギン", "a b"):
        for method, path, body in (
            ("POST", f"/v1/models/{name}/predict", _record(trained)),
            ("POST", f"/v1/models/{name}/explain", {"row": _record(trained)}),
            ("POST", f"/v1/models/{name}/feedback", {"request_id": "r", "label": 1}),
            ("GET", f"/v1/models/{name}", None),
        ):
            resp = server.client.request(method, path, json=body)
            assert resp.status_code == 400, (name[:10], path[:40], resp.text[:200])
            assert resp.json()["error"] == "bad_input"
            assert "is not valid: use 1-64 ASCII letters" in resp.json()["message"]
    raw = json.dumps({"request_id": "r1", "label": 1}).encode()
    status, answer = _raw_post(server.port, "/v1/models/../feedback", raw)
    assert status == 400, answer
    assert json.loads(answer)["message"].startswith("Model name '..' is not valid")
    after = _home_files(home)
    assert after == before  # no Parquet file in the home
    assert not list(home.glob("*.parquet"))


# ------------------------------------------------------------------------ request limits


def _chunks(total: int, head: bytes = b'{"row": {"note": "') -> Iterator[bytes]:
    yield head
    sent = len(head)
    block = b"a" * (1 << 20)
    while sent < total:
        yield block
        sent += len(block)
    yield b'"}}'


@pytest.mark.parametrize("route", ["predict", "explain", "feedback"])
def test_chunked_body_over_the_limit_is_413(server: Any, route: str) -> None:
    headers = {"content-type": "application/json"}
    resp = server.client.post(
        f"/v1/models/{MODEL}/{route}", content=_chunks(33 << 20), headers=headers
    )
    assert resp.status_code == 413, resp.text[:300]
    assert resp.json()["error"] == "payload_too_large"
    assert "read in chunks" in resp.json()["message"]


def _until_refused(srv: Any, key: str, timeout_s: float = 30) -> None:
    """Until a read with ``key`` answers 401 (bounded): a revoked key's cache entry expired."""
    deadline = time.monotonic() + timeout_s
    auth = {"Authorization": f"Bearer {key}"}
    while srv.client.get(f"/v1/models/{MODEL}", headers=auth).status_code != 401:
        assert time.monotonic() < deadline, f"the revoked key still reads after {timeout_s} s"
        time.sleep(0.1)


def test_auth_comes_before_the_body_and_revoked_keys_close_every_route(
    make_server: Any, trained: dict[str, Any]
) -> None:
    """Non-loopback bind: a malformed body without a key is 401, and stays so once revoked."""
    predict_key = create_key("boundary-predict", "predict")
    revoked = False
    try:
        # a key seen valid is trusted for 1 s (--key-cache; 5 s by default)
        srv = make_server("--host", "0.0.0.0", "--poll-interval", "0", "--key-cache", "1s")
        srv.wait_ready()
        malformed = b'{"version": "two", "row": [1, '
        routes = [
            f"/v1/models/{MODEL}/predict",
            f"/v1/models/{MODEL}/explain",
            f"/v1/models/{MODEL}/feedback",
            f"/v1/admin/models/{MODEL}/promote",
            "/v1/rag/kb/search",
            "/v1/rag/kb/ask",
        ]
        headers = {"content-type": "application/json"}
        for path in routes:
            resp = srv.client.post(path, content=malformed, headers=headers)
            assert resp.status_code == 401, (path, resp.text)
            assert resp.json()["error"] == "unauthorized", path
            assert resp.headers["www-authenticate"] == "Bearer"
        as_predict = {**headers, "Authorization": f"Bearer {predict_key}"}
        promote = srv.client.post(routes[3], content=malformed, headers=as_predict)
        assert promote.status_code == 403, promote.text  # the role, before the body too
        bad = srv.client.post(routes[2], content=malformed, headers=as_predict)
        assert bad.status_code == 422 and bad.json()["error"] == "validation"

        revoke_key("boundary-predict")
        revoked = True
        _until_refused(srv, predict_key)  # the guard forgets the key within its cache time
        label = {"request_id": "r-boundary", "label": 1}
        for path, body in ((routes[2], label), (routes[0], _record(trained))):
            for extra in ({}, {"Authorization": f"Bearer {predict_key}"}):
                resp = srv.client.post(path, json=body, headers=extra)
                assert resp.status_code == 401, (path, extra, resp.text)
        assert not (Path(trained["home"]) / "feedback" / MODEL).exists() or not any(
            "r-boundary" in str(p) for p in (Path(trained["home"]) / "feedback").rglob("*")
        )
    finally:
        if not revoked:
            revoke_key("boundary-predict")


def test_rag_on_a_keyless_loopback_server_sees_only_open_documents(
    server: Any, trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keizoku.rag.collection import file_inputs, ingest
    from keizoku.rag.embed import EmbeddingConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "open.md").write_text(
        "---\nallow: [group:everyone]\n---\n# Open\n\nThe canteen opens at nine.\n"
    )
    (docs / "hr.md").write_text(
        "---\nallow: [group:hr]\n---\n# HR\n\nThe canteen code is marmoset77.\n"
    )
    # lexical-only (no embedding model to load): the search below is lexical anyway
    ingest("kb-open", *file_inputs([docs]), embedding=EmbeddingConfig(backend="none"))
    body = {"query": "canteen", "k": 10, "mode": "lexical"}
    resp = server.client.post("/v1/rag/kb-open/search", json=body)
    assert resp.status_code == 200, resp.text
    assert [Path(h["source"]).name for h in resp.json()["results"]] == ["open.md"]
    assert "marmoset77" not in resp.text
    claimed = server.client.post("/v1/rag/kb-open/search", json={**body, "user": "alice"})
    assert claimed.status_code == 422  # a claimed identity is refused, never honoured
    assert claimed.json()["details"][0]["field"] == "user"


# ------------------------------------------------------------------- errors and OpenAPI


def test_openapi_lists_keizoku_errors_and_metrics_as_text(server: Any) -> None:
    doc = server.client.get("/openapi.json").json()
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    posts = [
        f"/v1/models/{MODEL}/predict",
        "/v1/models/{name}/explain",
        "/v1/models/{name}/feedback",
        "/v1/admin/models/{name}/promote",
        "/v1/rag/{collection}/search",
        "/v1/rag/{collection}/ask",
    ]
    for path in posts:
        responses = doc["paths"][path]["post"]["responses"]
        for code in ("400", "401", "403", "404", "413", "422", "429"):
            assert responses[code]["content"]["application/json"]["schema"] == ref, (path, code)
        assert "requestBody" in doc["paths"][path]["post"], path
    detail = doc["paths"]["/v1/models/{name}"]["get"]["responses"]
    assert {"401", "403", "404"} <= set(detail)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    missing = server.client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# ------------------------------------------------------------- one validator, one policy


def test_explain_validates_a_record_as_predict_does(server: Any, trained: dict[str, Any]) -> None:
    row = {**_record(trained), "radius": "22"}
    predict = server.client.post(f"/v1/models/{MODEL}/predict", json=row)
    explain = server.client.post(f"/v1/models/{MODEL}/explain", json={"row": row})
    for resp in (predict, explain):
        assert resp.status_code == 422, resp.text
        problem = resp.json()["details"][0]
        assert (problem["field"], problem["msg"], problem["value"]) == (
            "radius",
            "expected a number, got string",
            "22",
        )
    same = "Invalid request: field 'radius': expected a number, got string (value '22')."
    assert predict.json()["message"].startswith(same)
    assert explain.json()["message"].startswith(same)


def test_unseen_category_is_422_unless_allowed(server: Any, trained: dict[str, Any]) -> None:
    row = {**_record(trained), "grade": "ultra"}
    row.pop("note")
    path = f"/v1/models/{MODEL}/predict"
    refused = server.client.post(path, json=row)
    assert refused.status_code == 422
    kinds = {(d["field"], d["kind"]) for d in refused.json()["details"]}
    assert kinds == {("grade", "unseen"), ("note", "missing")}
    assert "?allow_unseen=true" in refused.json()["message"]
    allowed = server.client.post(path + "?allow_unseen=true", json=row)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["warnings"]["allowed"] == {"missing": 1, "unseen": 1}
    wrong_type = server.client.post(path + "?allow_unseen=true", json={**row, "radius": "x"})
    assert wrong_type.status_code == 422  # a wrong type is never allowed
    explained = server.client.post(
        f"/v1/models/{MODEL}/explain?allow_unseen=true", json={"row": row}
    )
    assert explained.status_code == 200, explained.text
    assert explained.json()["warnings"]["allowed"] == {"missing": 1, "unseen": 1}


def test_predict_file_refuses_what_the_server_refuses(trained: dict[str, Any]) -> None:
    root = Path(trained["root"])
    frame: pd.DataFrame = trained["frame"].drop(columns=["malignant"]).iloc[:200].copy()
    frame.loc[frame.index[120:], "grade"] = "ultra"
    frame.to_csv(root / "unseen.csv", index=False)
    out = root / "unseen-scored.csv"
    refused = _keizoku(trained, "predict", "unseen.csv", "-m", MODEL, "-o", str(out))
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    message = " ".join(refused.stderr.split())
    assert "Column 'grade' row 121 holds 'ultra': unseen category; 80 row(s) of 200" in message
    assert "--allow-unseen" in message
    assert not out.exists()
    allowed = _keizoku(
        trained, "predict", "unseen.csv", "-m", MODEL, "-o", str(out), "--allow-unseen"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "column 'grade' unseen category value(s) (first 'ultra'): 80 row(s)" in " ".join(
        allowed.stderr.split()
    )
    assert len(pd.read_csv(out)) == 200


def test_explain_row_with_a_missing_feature_is_exit_2(trained: dict[str, Any]) -> None:
    row = _record(trained)
    row.pop("texture")
    refused = _keizoku(trained, "explain", MODEL, "--row", json.dumps(row))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert "Invalid request: field 'texture': field required" in message
    assert "--allow-unseen" in message and "Traceback" not in refused.stderr
    allowed = _keizoku(trained, "explain", MODEL, "--row", json.dumps(row), "--allow-unseen")
    assert allowed.returncode == 0, allowed.stderr
    assert "1 missing field(s)" in " ".join(allowed.stderr.split())


# ------------------------------------------------------------------ the typed log record


def test_log_record_is_the_typed_prediction(server: Any, trained: dict[str, Any]) -> None:
    rows = [_record(trained, i) for i in range(300, 303)]
    preds = server.client.post(f"/v1/models/{MODEL}/predict", json=rows).json()["predictions"]
    ids = {p["request_id"]: p for p in preds}
    glob = str(Path(trained["home"]) / "predictions" / MODEL / "*.parquet")
    sql = (
        "select request_id, prediction, probabilities, score, f__grade, f__radius "
        f"from read_parquet('{glob}', union_by_name=true)"
    )
    deadline = time.monotonic() + 15
    found: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(found) < 3:
        with contextlib.suppress(duckdb.IOException):  # no segment written yet
            found = [r for r in duckdb.sql(sql).fetchall() if r[0] in ids]  # type: ignore[union-attr]
        time.sleep(0.2)
    assert len(found) == 3
    for rid, prediction, probabilities, score, grade, radius in found:
        sent = ids[rid]
        assert prediction == str(sent["prediction"])
        assert json.loads(probabilities) == sent["probabilities"]
        assert score == sent["probabilities"]["1"]  # the positive class, by name
        assert isinstance(grade, str) and isinstance(radius, float)
