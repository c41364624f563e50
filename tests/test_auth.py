"""API keys (hashed, revocable, roles) and the users directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keizoku import auth
from keizoku.cli import keys as keys_cli
from keizoku.errors import AuthError, ForbiddenError, UserInputError


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_keys_are_stored_hashed_and_authenticate(home: Path) -> None:
    assert auth.keys_configured() is False
    token = auth.create_key("ci", "predict", user="alice")
    assert token.startswith("kz_") and len(token) > 40
    assert auth.keys_configured() is True
    assert token.encode() not in (home / "auth.db").read_bytes()
    auth.set_user_groups("alice", ["hr", "eng", "hr"])
    p = auth.authenticate(token)
    assert p == auth.Principal("ci", "predict", "alice", ("eng", "hr"))
    assert p.has_role("predict") and not p.has_role("admin")
    admin = auth.authenticate(auth.create_key("root", "admin"))
    assert admin.has_role("predict") and admin.user is None and admin.groups == ()
    with pytest.raises(ForbiddenError, match="has role 'predict'; this needs 'admin'"):
        auth.require_role(p, "admin")
    assert [k["name"] for k in auth.list_keys()] == ["ci", "root"]
    assert all("token" not in str(k) for k in auth.list_keys())


def test_groups_change_immediately_and_revocation(home: Path) -> None:
    token = auth.create_key("k", "predict", user="bob")
    assert auth.authenticate(token).groups == ()
    auth.set_user_groups("bob", ["finance"])
    assert auth.authenticate(token).groups == ("finance",)
    auth.revoke_key("k")
    with pytest.raises(AuthError) as err:
        auth.authenticate(token)
    assert err.value.message == "The API key 'k' was revoked. Create a new one."
    assert auth.keys_configured() is False
    with pytest.raises(AuthError) as err:
        auth.authenticate("kz_" + "x" * 43)
    assert err.value.message == "The API key is not valid. Check the key, or create a new one."
    with pytest.raises(AuthError, match="No API key given"):
        auth.authenticate(None)


def test_bad_input_names_the_fix(home: Path) -> None:
    auth.create_key("dup", "predict")
    with pytest.raises(UserInputError, match="A key named 'dup' already exists"):
        auth.create_key("dup", "admin")
    with pytest.raises(UserInputError) as err:
        auth.create_key("x", "owner")
    assert err.value.message == "Role 'owner' is not valid. Use --role predict or --role admin."
    with pytest.raises(UserInputError, match="Group 'h r' is not valid"):
        auth.set_user_groups("alice", ["h r"])
    with pytest.raises(Exception, match="No key named 'ghost'"):
        auth.revoke_key("ghost")


def test_keys_and_users_cli(home: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(keys_cli.keys_app, ["create", "--name", "web", "--role", "admin",
                                        "--user", "alice"])  # fmt: skip
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[0]
    assert auth.authenticate(token).role == "admin"
    res = runner.invoke(keys_cli.keys_app, ["list"])
    assert res.exit_code == 0 and "web\tadmin\talice" in res.stdout and token not in res.stdout
    res = runner.invoke(keys_cli.keys_app, ["create", "--name", "web"])
    assert res.exit_code == 2 and "already exists" in res.output
    assert runner.invoke(keys_cli.keys_app, ["revoke", "web"]).exit_code == 0
    assert runner.invoke(keys_cli.keys_app, ["revoke", "web2"]).exit_code == 3
    res = runner.invoke(keys_cli.users_app, ["set", "alice", "--group", "hr", "--group", "eng"])
    assert res.exit_code == 0 and res.stdout.strip() == "alice: eng, hr"
    res = runner.invoke(keys_cli.users_app, ["list"])
    assert res.stdout.strip() == "alice\teng, hr"


def test_key_changes_are_audited_and_tamper_evident(home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Creating and revoking keys leaves hash-chained entries; an edit is detected (exit 5)."""
    import getpass

    from keizoku import audit

    assert cli("keys", "create", "--name", "ops", "--role", "admin").code == 0
    assert cli("keys", "revoke", "ops").code == 0
    entries = audit.read(audit.KEYS)
    assert [e["action"] for e in entries] == ["key_create", "key_revoke"]
    assert {e["actor"] for e in entries} == {getpass.getuser()}
    assert all("kz_" not in str(e) for e in entries)  # the token is never written
    assert cli("keys", "history", "--verify").code == 0
    path = audit.audit_path(audit.KEYS)
    path.write_text(path.read_text().replace("'ops'", "'dev'", 1))
    tampered = cli("keys", "history", "--verify")
    assert tampered.code == 5, tampered.text
    assert "line 1" in tampered.text or "entry 1" in tampered.text
