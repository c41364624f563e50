"""``keizoku keys`` and ``keizoku users``: API keys and the users directory (``keizoku.auth``).

Errors end through ``keizoku.cli._exit.exit_for``: the same one line as ``keizoku``
prints and the error's exit code, also when a group runs on its own (an unknown key: 3).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keizoku.auth import (
    create_key,
    list_keys,
    list_users,
    revoke_key,
    set_user_groups,
)
from keizoku.cli._exit import exit_for
from keizoku.cli._io import say
from keizoku.errors import NotFoundError, UserInputError

__all__ = ["keys_app", "users_app", "register"]

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
users_app = typer.Typer(help="The users directory: which groups each user belongs to.",
                        no_args_is_help=True)  # fmt: skip


@keys_app.command("create")
def _keys_create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the key.")],
    role: Annotated[str, typer.Option("--role", help="predict or admin.")] = "predict",
    user: Annotated[str | None, typer.Option("--user", help="The user the key acts as.")] = None,
) -> None:
    """Create a key and print its token (shown once)."""
    try:
        token = create_key(name, role, user)
    except (UserInputError, NotFoundError) as exc:
        raise exit_for(exc) from exc
    typer.echo(token)
    say(f"Key {name!r} ({role}) created. Store the token now: it is not shown again.",
        to_stderr=True)  # fmt: skip


@keys_app.command("list")
def _keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List keys (never their tokens)."""
    keys = list_keys()
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    for k in keys:
        state = "revoked" if k["revoked"] else "active"
        typer.echo(f"{k['name']}\t{k['role']}\t{k['user'] or '-'}\t{k['created_at']}\t{state}")


@keys_app.command("revoke")
def _keys_revoke(name: str) -> None:
    """Revoke a key by name (exit 3 when no key has that name)."""
    try:
        revoke_key(name)
    except NotFoundError as exc:
        raise exit_for(exc) from exc
    say(f"Key {name!r} revoked.")


@keys_app.command("history")
def _keys_history(
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the hash chain; exit 5 if an entry changed.")
    ] = False,
) -> None:
    """Every key creation and revocation: when, by whom (hash-chained like model history)."""
    from keizoku import audit

    if verify:
        n = audit.verify(audit.KEYS)
        say(f"The key audit log is intact: {n} entries, hash chain verified.")
        return
    for e in audit.read(audit.KEYS):
        typer.echo(f"{e['time']}\t{e['action']}\t{e['actor']}\t{e['reason']}")


@users_app.command("set")
def _users_set(
    user: str,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Repeat for each group.")
    ] = None,
) -> None:
    """Set a user's groups (replaces the previous list)."""
    try:
        groups = set_user_groups(user, group or [])
    except UserInputError as exc:
        raise exit_for(exc) from exc
    say(f"{user}: {', '.join(groups) or '(no groups)'}")


@users_app.command("list")
def _users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users and their groups."""
    users = list_users()
    if as_json:
        typer.echo(json.dumps(users, indent=2))
        return
    for u in users:
        typer.echo(f"{u['user']}\t{', '.join(u['groups']) or '-'}")


def register(app: typer.Typer) -> None:
    """Add ``keys`` and ``users`` to the main app."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(users_app, name="users")
