"""``KEIZOKU_STORE`` through the real ``keizoku`` executable.

Two homes (two folders, as on two machines) naming one PostgreSQL database share keys,
the registry and the audit chains: what one creates or promotes, or a third home trained,
the other sees, with nothing else changed. A store that cannot be used is one line naming
the setting, the URL without its password, and the fix (exit 2), and the password never
shows.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from keizoku.errors import ExitCode
from kzsupport import REPO, Server, until
from pgsupport import Postgres, keizoku, postgres, trained_penguins  # noqa: F401 (the fixture)

PENGUINS = REPO / "examples" / "data" / "penguins.csv"
SECRET = "s3cr3t-Pa55"


def _dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_homes_on_one_store_share_keys_registry_and_audit(
    postgres: Postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.database()
    a, b = tmp_path / "a", tmp_path / "b"
    # penguins v1 and v2 trained on the store from a third home (the run's template)
    trained_penguins(a, url, versions=2)
    created = keizoku(a, url, "keys", "create", "--role", "predict", "--name", "ci")
    assert created.code == 0, created.text
    listed = keizoku(b, url, "keys", "list", "--json")
    assert listed.code == 0, listed.text
    assert [k["name"] for k in json.loads(listed.out)] == ["ci"]
    assert keizoku(b, url, "keys", "revoke", "ci").code == 0
    assert json.loads(keizoku(a, url, "keys", "list", "--json").out)[0]["revoked"] is True
    assert not (a / ".keizoku" / "auth.db").exists()  # nothing shared went to the home
    assert not (b / ".keizoku" / "auth.db").exists()

    promoted = keizoku(a, url, "promote", "penguins", "2", "--force", "--reason", "shared")
    assert promoted.code == 0, promoted.text
    models = keizoku(b, url, "models", "--json")
    assert models.code == 0, models.text
    rows = json.loads(models.out)
    champion = [r for r in rows if r["model"] == "penguins" and "champion" in r["aliases"]]
    assert [r["version"] for r in champion] == [2], rows
    elsewhere = keizoku(tmp_path / "c", url, "models", "--json", home=False)  # no home at all
    assert elsewhere.code == 0 and json.loads(elsewhere.out) == rows, elsewhere.text
    history = keizoku(b, url, "history", "penguins", "--verify")
    assert history.code == 0 and "hash chain intact" in history.out, history.text
    entries = [
        json.loads(line)
        for line in keizoku(b, url, "history", "penguins", "--json").out.splitlines()
    ]
    assert [e["reason"] for e in entries if e["action"] == "promote"] == ["shared"]
    assert keizoku(b, url, "keys", "history", "--verify").code == 0
    _two_servers_share_keys_and_heartbeats(url, a, b)
    assert not (b / ".keizoku" / "audit").exists() and not (b / ".keizoku" / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("store", "says"),
    [
        (f"mysql://kz:{SECRET}@127.0.0.1/db", "names the store kind 'mysql'"),
        (f"postgresql://kz:{SECRET}@127.0.0.1:notaport/db", "port must be a number"),
        (f"postgresql://kz:{SECRET}@127.0.0.1:5432", "names no database"),
        (f"postgresql://kz:{SECRET}@127.0.0.1:{{port}}/db", "cannot be used"),
    ],
)
def test_a_store_that_cannot_be_used_is_one_line_without_the_password(
    tmp_path: Path, store: str, says: str
) -> None:
    store = store.replace("{port}", str(_dead_port()))
    for args in (("keys", "list"), ("history", "churn", "--verify"), ("models",)):
        result = keizoku(tmp_path / "p", store, *args)
        assert result.code == ExitCode.USAGE, result.text
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert "KEIZOKU_STORE=" in lines[0] and "kz@127.0.0.1" in lines[0] and says in lines[0]
        assert "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE" in lines[0]
        assert SECRET not in result.out + result.err and "Traceback" not in result.err


def test_verbose_and_doctor_print_the_store_without_its_password(tmp_path: Path) -> None:
    store = f"postgresql://kz:{SECRET}@127.0.0.1:{_dead_port()}/db"
    (tmp_path / "p" / ".keizoku").mkdir(parents=True)
    for args in (("-v", "models"), ("doctor",)):
        result = keizoku(tmp_path / "p", store, *args)
        assert result.code == ExitCode.USAGE, result.text
        assert "kz@127.0.0.1" in result.err and SECRET not in result.out + result.err


def _two_servers_share_keys_and_heartbeats(url: str, a: Path, b: Path) -> None:
    """A server in each home: a key created in one home opens both, its revocation in the
    other closes both within the guard's cache time (``--key-cache``); `status` in one home
    sees both."""
    web = keizoku(a, url, "keys", "create", "--role", "predict", "--name", "web").out.strip()
    keep = keizoku(a, url, "keys", "create", "--role", "admin", "--name", "keep")
    assert web.startswith("kz_") and keep.code == 0, keep.text  # keys stay required
    servers = []
    try:
        for home in (a, b):  # both start at once
            env = {**os.environ, "KEIZOKU_HOME": str(home / ".keizoku"), "KEIZOKU_STORE": url}
            env.pop("KEIZOKU_TRACKING_URI", None)
            servers.append(Server(home, "--poll-interval", "1", "--key-cache", "1s", env=env))
        for server in servers:
            server.wait_ready(300)
        auth = {"Authorization": f"Bearer {web}"}
        assert [s.client.get("/v1/models", headers=auth).status_code for s in servers] == [200] * 2
        assert keizoku(b, url, "keys", "revoke", "web").code == 0

        def both_refuse() -> bool:
            codes = [s.client.get("/v1/models", headers=auth).status_code for s in servers]
            return codes == [401, 401]

        until(both_refuse, 30, "the revoked key refused by both servers")  # cached for 1 s
        status = keizoku(a, url, "status", "penguins", "--json")
        assert all(f":{s.port}" in status.out for s in servers), status.text
    finally:
        Server.stop_all(servers)
