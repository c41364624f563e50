"""The REST routes on a real uvicorn server over loopback, driven with httpx."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from keizoku import auth
from keizoku.rag.collection import file_inputs, ingest
from keizoku.serving.rag_routes import router
from ragsupport import serve_in_thread


@pytest.fixture
def server(fresh_home: Path) -> Iterator[str]:
    app = FastAPI()
    app.include_router(router)
    yield from serve_in_thread(app, lifespan="off")


@pytest.fixture
def corpus(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    write(
        docs / "hr.md",
        "---\nallow: [group:hr]\n---\n# HR\n\n## Salaries\n\n"
        "The CEO salary code is marmoset77. Salaries are paid monthly.\n",
    )
    write(docs / "eng.md", "---\nallow: [group:eng, user:alice]\n---\n# Eng\n\n## Deploys\n\n"
          "Deploys happen on Tuesdays with the pelican pipeline.\n")  # fmt: skip
    ingest("kb", *file_inputs([docs]))
    auth.set_user_groups("alice", ["hr"])
    auth.set_user_groups("bob", ["eng"])


def post(base: str, path: str, key: str | None, body: Mapping[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(base + path, json=body, headers=headers, timeout=30)


def test_search_and_ask_follow_the_keys_user_and_groups(server: str, corpus: None) -> None:
    alice = auth.create_key("alice-key", "predict", user="alice")
    bob = auth.create_key("bob-key", "predict", user="bob")
    r = post(server, "/v1/rag/kb/search", alice, {"query": "salary code", "k": 10})
    assert r.status_code == 200
    assert {Path(h["source"]).name for h in r.json()["results"]} == {"hr.md", "eng.md"}
    r = post(server, "/v1/rag/kb/search", bob, {"query": "salary code marmoset77", "k": 10})
    assert r.status_code == 200 and r.json()["count"] == 1
    assert "marmoset77" not in str(r.json()["results"])
    r = httpx.post(server + "/v1/rag/kb/ask", json={"question": "When do deploys happen?"},
                   headers={"X-API-Key": bob}, timeout=30)  # fmt: skip
    body = r.json()
    assert r.status_code == 200 and body["mode"] == "extractive"
    assert body["citations"][0]["quote"] == "Deploys happen on Tuesdays with the pelican pipeline."
    # a change of groups takes effect on the very next request
    auth.set_user_groups("bob", ["eng", "hr"])
    r = post(server, "/v1/rag/kb/search", bob, {"query": "marmoset77", "k": 1})
    assert "marmoset77" in r.json()["results"][0]["text"]
    auth.set_user_groups("bob", [])
    r = post(server, "/v1/rag/kb/search", bob, {"query": "marmoset77 pelican", "k": 10})
    assert r.json() == {"collection": "kb", "query": "marmoset77 pelican", "count": 0,
                        "results": []}  # fmt: skip


def test_keys_without_user_see_nothing_and_errors_are_4xx(server: str, corpus: None) -> None:
    anon = auth.create_key("service", "admin")
    r = post(server, "/v1/rag/kb/search", anon, {"query": "salary"})
    assert r.status_code == 200 and r.json()["count"] == 0
    r = post(server, "/v1/rag/kb/search", None, {"query": "salary"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = post(server, "/v1/rag/kb/search", "kz_wrong", {"query": "salary"})
    assert r.status_code == 401
    alice = auth.create_key("alice-key", "predict", user="alice")
    auth.revoke_key("alice-key")
    r = post(server, "/v1/rag/kb/ask", alice, {"question": "salary"})
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    bob = auth.create_key("bob-key", "predict", user="bob")
    r = post(server, "/v1/rag/nope/search", bob, {"query": "salary"})
    assert r.status_code == 404
    assert r.json()["message"] == (
        "Collection 'nope' does not exist. Create it with "
        "'keizoku rag ingest PATH --collection nope'."
    )
    for bad in ({"query": ""}, {"query": "x", "k": 0}, {"query": "x", "mode": "magic"}, {}):
        r = post(server, "/v1/rag/kb/search", bob, bad)
        assert r.status_code == 422, bad
    r = post(server, "/v1/rag/..%2Fetc/search", bob, {"query": "x"})
    assert 400 <= r.status_code < 500
    r = httpx.post(server + "/v1/rag/kb/ask", content=b"not json",
                   headers={"Authorization": f"Bearer {bob}",
                            "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422
