"""Wrong API keys are throttled per client address, on the API and the console sign-in.

Keys are long random tokens, so guessing one is hopeless anyway; the throttle (always on,
whatever ``--rate-limit`` says) keeps a guessing client from even trying: after 10
distinct wrong keys from one address, a key the server has never seen valid is refused
unchecked with 429 and ``Retry-After``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keizoku import auth
from keizoku.serving.app import ServeOptions, create_app
from ragsupport import serve_in_thread


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A real server on loopback with one admin key (so keys are required); (url, key)."""
    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path / "home"))
    key = auth.create_key("ops", "admin")
    app = create_app(ServeOptions(poll_interval_s=0, prediction_log=False))
    app.state.keizoku.guard.ttl_s = 0.0  # every request checks its key (no memory of 5 s)
    for base in serve_in_thread(app):
        yield base, key


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _sign_in(client: httpx.Client, base: str, key: str) -> httpx.Response:
    form = client.get(f"{base}/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "key": key, "next": "/console/models"}
    return client.post(f"{base}/console/login", data=data, follow_redirects=False)


def test_ten_wrong_keys_then_429_even_for_a_valid_key(server: tuple[str, str]) -> None:
    base, key = server
    codes = [
        httpx.get(f"{base}/v1/models", headers=_bearer(f"kz_guess{i}")).status_code
        for i in range(10)
    ]
    assert codes == [401] * 10
    over = httpx.get(f"{base}/v1/models", headers=_bearer("kz_guess10"))
    assert over.status_code == 429
    body = over.json()
    assert body["error"] == "rate_limited" and "wrong API keys" in body["message"]
    assert "keys list" in body["message"]  # the fix
    assert int(over.headers["Retry-After"]) >= 1
    # the valid key, never used from here, is not even checked while the address waits
    assert httpx.get(f"{base}/v1/models", headers=_bearer(key)).status_code == 429
    # no key at all is not a guess: still the plain 401 that says what to send
    assert httpx.get(f"{base}/v1/models").status_code == 401
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_a_key_seen_valid_keeps_working_during_a_flood(server: tuple[str, str]) -> None:
    """Behind one proxy every caller has the same address: a guesser there must not lock
    out the clients whose keys this server has already seen valid (still checked each time:
    a revoked one stops)."""
    base, key = server
    assert httpx.get(f"{base}/v1/models", headers=_bearer(key)).status_code == 200
    for i in range(11):
        httpx.get(f"{base}/v1/models", headers=_bearer(f"kz_guess{i}"))
    assert httpx.get(f"{base}/v1/models", headers=_bearer("kz_guess11")).status_code == 429
    assert httpx.get(f"{base}/v1/models", headers=_bearer(key)).status_code == 200
    auth.create_key("other", "predict")  # keys stay required once "ops" is revoked
    auth.revoke_key("ops")
    assert httpx.get(f"{base}/v1/models", headers=_bearer(key)).status_code == 401


def test_one_wrong_key_sent_again_counts_once(server: tuple[str, str]) -> None:
    """A client still sending a revoked key gets 401 every time, and does not use up its
    address's allowance: a new valid key from the same address still gets in."""
    base, _ = server
    codes = {httpx.get(f"{base}/v1/models", headers=_bearer("kz_revoked")).status_code
             for _ in range(25)}  # fmt: skip
    assert codes == {401}
    fresh = auth.create_key("fresh", "predict")
    assert httpx.get(f"{base}/v1/models", headers=_bearer(fresh)).status_code == 200


def test_console_sign_in_counts_wrong_keys_too(server: tuple[str, str]) -> None:
    base, key = server
    with httpx.Client() as client:
        for i in range(10):
            page = _sign_in(client, base, f"kz_guess{i}")
            assert page.status_code == 401 and "not valid" in page.text
        page = _sign_in(client, base, key)
        assert page.status_code == 429 and "wrong API keys" in page.text
        assert int(page.headers["Retry-After"]) >= 1
        assert "kz_session" not in client.cookies
    # the API shares the address's count
    assert httpx.get(f"{base}/v1/models", headers=_bearer("kz_other")).status_code == 429
