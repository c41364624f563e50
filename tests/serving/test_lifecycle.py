"""Servers started for one test: API keys, SIGTERM, integrity at startup, unsafe binds."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from keizoku.auth import create_key, revoke_key
from keizoku.serving.app import ServeOptions, create_app
from keizoku.serving.state import ModelSet
from kzsupport import KEIZOKU_EXE, json_records, until
from ragsupport import serve_in_thread

MODEL = "clinic"
KEIZOKU = KEIZOKU_EXE
PREDICT = f"/v1/models/{MODEL}/predict"


def records(frame: pd.DataFrame, n: int, start: int = 0) -> list[dict[str, Any]]:
    return json_records(frame.drop(columns=["malignant"]).iloc[start : start + n])


def test_keys_are_enforced(make_server: Any, trained: dict[str, Any]) -> None:
    predict_key = create_key("serving-predict", "predict")
    admin_key = create_key("serving-admin", "admin")
    try:
        srv = make_server("--poll-interval", "0").wait_ready()
        rec = records(trained["frame"], 1)[0]

        none = srv.client.post(PREDICT, json=rec)
        assert none.status_code == 401
        assert none.headers["www-authenticate"] == "Bearer"
        assert "No API key given" in none.json()["message"]
        wrong = srv.client.post(PREDICT, json=rec, headers={"Authorization": "Bearer kz_nope"})
        assert wrong.status_code == 401
        assert "kz_nope" not in wrong.text

        as_predict = {"Authorization": f"Bearer {predict_key}"}
        assert srv.client.post(PREDICT, json=rec, headers=as_predict).status_code == 200
        assert (
            srv.client.post(PREDICT, json=rec, headers={"X-API-Key": predict_key}).json()["version"]
            == 1
        )
        assert srv.client.get("/v1/models").status_code == 401
        assert srv.client.get("/v1/models", headers=as_predict).status_code == 200
        assert srv.client.get("/healthz").status_code == 200

        reload = f"/v1/admin/models/{MODEL}/reload"
        denied = srv.client.post(reload, headers=as_predict)
        assert denied.status_code == 403
        assert "this needs 'admin'" in denied.json()["message"]
        as_admin = {"Authorization": f"Bearer {admin_key}"}
        ok = srv.client.post(reload, headers=as_admin)
        assert ok.status_code == 200, ok.text
        assert ok.json()["after"] == {"champion": 1}
        assert srv.client.post(PREDICT, json=rec, headers=as_admin).status_code == 200

        promote = f"/v1/admin/models/{MODEL}/promote"
        body = {"version": 2, "force": True, "reason": "serving test"}
        assert srv.client.post(promote, json=body, headers=as_predict).status_code == 403
        # The server's first registry write imports MLflow: more than the client's 30 s
        # on a loaded 2-core machine.
        done = srv.client.post(promote, json=body, headers=as_admin, timeout=180)
        assert done.status_code == 200, done.text
        assert done.json()["swap"]["after"]["champion"] == 2
        assert done.json()["promotion"]["actor"] == "key:serving-admin"
        assert srv.client.post(PREDICT, json=rec, headers=as_admin).json()["version"] == 2

        srv.stop()
        log = srv.output()
        assert predict_key not in log and admin_key not in log
    finally:
        from keizoku.registry.models import set_alias

        set_alias(MODEL, "champion", 1)
        set_alias(MODEL, "challenger", 2)
        revoke_key("serving-predict")
        revoke_key("serving-admin")


REQUESTS = 5  # the largest request holds 10,000 records (serving.fastpath.MAX_RECORDS)


def test_sigterm_finishes_in_flight_requests(make_server: Any, trained: dict[str, Any]) -> None:
    import duckdb

    srv = make_server("--poll-interval", "0").wait_ready()
    # 10,000 records per request, encoded before the clock starts; SIGTERM is sent once
    # every request is on the wire (on a loaded machine, a thread could still be encoding
    # or sending after a fixed wait, and the signal then closed an idle connection).
    body = json.dumps(records(trained["frame"], 500) * 20).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    results: list[tuple[float, httpx.Response]] = []
    sent = [threading.Event() for _ in range(REQUESTS)]

    def send(i: int) -> None:
        def stream() -> Iterator[bytes]:
            yield body
            sent[i].set()  # asked for more: every byte of the request was written

        with httpx.Client(base_url=srv.url, timeout=120) as c:
            c.get("/healthz")  # connect first: the request below is then surely accepted
            resp = c.post(PREDICT, content=stream(), headers=headers)
            results.append((time.monotonic(), resp))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(REQUESTS)]
    for t in threads:
        t.start()
    assert all(event.wait(120) for event in sent), "the requests were not sent"
    # the server's loop reads what is on the wire; a shorter pause than the requests' work
    # (five of 10,000 records: ~0.15 s of scoring each, one after another on the GIL), which
    # a faster server had finished within the 0.5 s this pause was
    time.sleep(0.2)
    signalled = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert srv.proc.wait(60) == 0, srv.output()
    assert len(results) == REQUESTS
    assert all(r.status_code == 200 for _, r in results)
    assert max(done for done, _ in results) > signalled  # at least one was in flight
    ids = {p["request_id"] for _, r in results for p in r.json()["predictions"]}
    assert len(ids) == REQUESTS * 10_000
    glob = str(Path(trained["home"]) / "predictions" / MODEL / "*.parquet")
    logged = {row[0] for row in duckdb.sql(f"select request_id from '{glob}'").fetchall()}  # type: ignore[union-attr]
    assert ids <= logged  # closing the log on shutdown flushed every record


def _wait(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _artifact(version: int) -> Path:
    from keizoku.registry.backend import client
    from keizoku.registry.models import MODEL_FILE, _local_dir

    return _local_dir(client(), MODEL, version) / "artifacts" / MODEL_FILE


def test_tampered_version_is_refused_on_swap(make_server: Any, trained: dict[str, Any]) -> None:
    from keizoku.registry.models import set_alias

    server = make_server("--poll-interval", "0.3").wait_ready()  # has never loaded version 2
    path = _artifact(2)
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"tampered")
        set_alias(MODEL, "champion", 2)
        resp = server.client.post(f"/v1/admin/models/{MODEL}/reload")
        assert resp.status_code == 403  # admin routes are off without keys: the poller acts
        _wait(lambda: "modified after registration" in server.output())
        one = server.client.post(PREDICT, json=records(trained["frame"], 1)[0]).json()
        assert one["version"] == 1
    finally:
        set_alias(MODEL, "champion", 1)
        path.write_bytes(original)
    _wait(lambda: server.client.get("/readyz").json()["models"][MODEL] == {"champion": 1})


def test_an_ungated_version_never_answers_however_the_alias_moved(
    make_server: Any, trained: dict[str, Any]
) -> None:
    """An alias moved around keizoku (MLflow's own client) cannot put a version on traffic."""
    from keizoku.registry.backend import client
    from keizoku.registry.models import get_version, set_alias

    server = make_server("--poll-interval", "0.3").wait_ready()
    tags = get_version(f"{MODEL}:2").tags
    c = client()
    try:
        c.set_model_version_tag(MODEL, "2", "keizoku.gate", "failed")
        c.set_model_version_tag(MODEL, "2", "keizoku.state", "gated-fail")
        set_alias(MODEL, "champion", 2)
        _wait(lambda: "may not answer traffic as 'champion'" in server.output())
        for rec in records(trained["frame"], 20):
            assert server.client.post(PREDICT, json=rec).json()["version"] == 1
    finally:
        set_alias(MODEL, "champion", 1)
        for key in ("keizoku.gate", "keizoku.state"):
            c.set_model_version_tag(MODEL, "2", key, tags[key])
    _wait(lambda: server.client.get("/readyz").json()["models"][MODEL] == {"champion": 1})


def _keizoku(trained: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEIZOKU, *args], env=trained["env"], capture_output=True, text=True, timeout=120
    )


def test_tampered_artifact_refused_at_startup(trained: dict[str, Any]) -> None:
    path = _artifact(1)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        out = _keizoku(trained, "serve", "--port", "1", "--model", MODEL)
    finally:
        path.write_bytes(original)
    assert out.returncode == 5, out.stderr
    assert "was modified after registration" in out.stderr
    assert "Refusing to load it" in out.stderr


def test_a_set_loaded_before_the_app_starts_is_served_without_loading_again(
    trained: dict[str, Any],
) -> None:
    """``keizoku serve`` loads and verifies each version before it binds the port; the app
    serves that very set (its metrics too) instead of unpickling every version again. A set
    not ready yet is loaded by the app as it starts, as without one."""
    options = ServeOptions(models=[MODEL], poll_interval_s=0, prediction_log=False)
    loaded = ModelSet(names=[MODEL])
    loaded.load_all()
    champion = loaded.models[MODEL].champion
    app = create_app(options, loaded)
    for base in serve_in_thread(app):
        assert httpx.get(f"{base}/readyz").status_code == 200
        detail = httpx.get(f"{base}/v1/models/{MODEL}").json()
        assert detail["served"] == loaded.models[MODEL].versions()
        gauge = f'keizoku_model_version{{model="{MODEL}",alias="champion"}} {champion.version}'
        assert gauge in httpx.get(f"{base}/metrics").text
    assert app.state.keizoku.models is loaded and loaded.models[MODEL].champion is champion

    waiting = ModelSet(names=[MODEL])
    for url in serve_in_thread(create_app(options, waiting)):
        with httpx.Client(base_url=url) as client:
            until(lambda: client.get("/readyz").status_code == 200, 60, "/readyz 200")
    assert waiting.models[MODEL].champion.version == champion.version
    assert waiting.models[MODEL].champion is not champion  # loaded by the app's lifespan


def test_non_loopback_bind_without_keys_refused(trained: dict[str, Any]) -> None:
    out = _keizoku(trained, "serve", "--host", "0.0.0.0", "--port", "1")
    assert out.returncode == 2
    assert "Refusing to bind to '0.0.0.0' without API keys" in out.stderr


def test_serve_unknown_model_fails_clearly(trained: dict[str, Any]) -> None:
    out = _keizoku(trained, "serve", "--model", "clinik", "--port", "1")
    assert out.returncode == 3
    assert "did you mean 'clinic'?" in out.stderr


def test_a_key_cache_that_is_not_a_duration_is_exit_2(trained: dict[str, Any]) -> None:
    out = _keizoku(trained, "serve", "--key-cache", "briefly", "--port", "1")
    assert out.returncode == 2, out.stderr
    assert "--key-cache 'briefly' is not a duration" in " ".join(out.stderr.split())
    assert "Uvicorn running" not in out.stdout + out.stderr


def test_a_beat_interval_is_a_positive_duration_for_a_server_that_does_not_poll(
    trained: dict[str, Any],
) -> None:
    refused = {
        ("--beat-interval", "1s", "--poll-interval", "0.5"): "applies only with --poll-interval 0",
        ("--beat-interval", "often", "--poll-interval", "0"): "'often' is not a duration",
        ("--beat-interval", "0", "--poll-interval", "0"): "must be more than 0 s",
    }
    for args, message in refused.items():
        out = _keizoku(trained, "serve", *args, "--port", "1")
        assert out.returncode == 2, (args, out.stderr)
        assert f"--beat-interval '{args[1]}'" in out.stderr and message in " ".join(
            out.stderr.split()
        ), (args, out.stderr)
        assert "Uvicorn running" not in out.stdout + out.stderr


def test_a_share_interval_is_a_positive_duration(trained: dict[str, Any]) -> None:
    for value, message in (("often", "'often' is not a duration"), ("0", "must be more than 0 s")):
        out = _keizoku(trained, "serve", "--share-interval", value, "--port", "1")
        assert out.returncode == 2, (value, out.stderr)
        assert f"--share-interval '{value}'" in out.stderr and message in " ".join(
            out.stderr.split()
        ), (value, out.stderr)
        assert "Uvicorn running" not in out.stdout + out.stderr
