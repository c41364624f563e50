"""A loopback server without keys: the console is open to local callers, read-only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from kzsupport import Server
from rollout_support import MODEL, trained_copy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = trained_copy(tmp_path_factory.mktemp("keyless"))
    srv = Server(root).wait_ready()
    yield srv
    srv.stop()


def test_pages_open_without_sign_in_and_without_buttons(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.get("/console/models")
        assert r.status_code == 200
        assert 'data-state="champion"' in r.text and "local (no API keys)" in r.text
        assert 'class="inline promote"' not in r.text and "Sign out" not in r.text
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/assistant").text)
        assert token is not None
        r = client.post(f"/console/models/{MODEL}/promote",
                        data={"version": "2", "csrf": token.group(1)})  # fmt: skip
        assert r.status_code == 403
        assert "no API keys are configured" in r.text
        r = client.get(f"/v1/models/{MODEL}")
        champion = [v["version"] for v in r.json()["versions"] if "champion" in v["aliases"]]
        assert champion == [1]


def test_a_post_without_the_csrf_cookie_is_refused(server: Server) -> None:
    r = httpx.post(f"{server.url}/console/assistant", data={"collection": "kb", "question": "x"})
    assert r.status_code == 403 and "CSRF" in r.text
