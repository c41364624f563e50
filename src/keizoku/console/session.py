"""Console sessions: an API key signs in once, a signed cookie carries the session.

* ``kz_session`` = ``base64url(JSON {"k": key name, "e": expiry, "n": nonce}) "." HMAC``,
  signed with the console secret (``<home>/console.secret``, 32 random bytes, mode 0600,
  created once; with ``KEIZOKU_STORE``, one row of the shared store, so every server
  accepts the sessions of the others). The cookie never holds the key. Every request
  checks the signature and the expiry, then reads the key by name from the key store
  (``keizoku.auth``): a revoked key ends every session it opened at the next click, in
  every worker.
* Cookies are ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``, and ``Secure`` unless
  the server is bound to loopback.
* CSRF: every form carries ``csrf`` = HMAC(secret, "csrf:" + nonce), the nonce being the
  session's (signed in) or the ``kz_pre`` cookie's (the sign-in form, and a keyless
  loopback server). A POST whose token does not match is refused (403) before it acts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from keizoku.auth import Principal, get_user_groups, list_keys
from keizoku.errors import ForbiddenError
from keizoku.home import file_lock, home

__all__ = [
    "PRE",
    "SESSION",
    "TTL_S",
    "Session",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "pre_nonce",
    "set_pre",
    "read_session",
    "sign_in",
]

SESSION, PRE = "kz_session", "kz_pre"
TTL_S = 8 * 3600
PATH = "/console"


def _secret_path() -> Path:
    return home() / "console.secret"


def _secret() -> bytes:
    """The console's signing secret: the home's file, or one row of a shared store.

    With ``KEIZOKU_STORE`` every server reads the same secret (created once, under the
    store's lock), so a session signed by one server is valid on the others."""
    from keizoku.store import store_from_env

    store = store_from_env()
    if store.kind != "embedded":
        doc = store.get("console", "secret")  # one indexed read; the lock only to create it
        if doc is None:
            with store.lock("console/secret.lock"):
                doc = store.get("console", "secret")
                if doc is None:
                    doc = {"secret": secrets.token_hex(32)}
                    store.put("console", "secret", doc)
        return str(doc["secret"]).encode()
    path = _secret_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name("console.secret.lock")):
            if not path.is_file():
                tmp = path.with_name(f".console.secret.tmp-{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, secrets.token_hex(32).encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
    return path.read_bytes().strip()


def _mac(data: str) -> str:
    return hmac.new(_secret(), data.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    """A signed-in session: the key's principal and the nonce its CSRF token derives from."""

    principal: Principal
    nonce: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _principal(name: str) -> Principal | None:
    """The key named ``name`` as it is now (None when revoked or deleted)."""
    for key in list_keys():
        if key["name"] == name and not key["revoked"]:
            return Principal(key["name"], key["role"], key["user"], get_user_groups(key["user"]))
    return None


def _set(response: Response, name: str, value: str, secure: bool, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                        samesite="strict", secure=secure)  # fmt: skip


def sign_in(principal: Principal, response: Response, *, secure: bool) -> Session:
    """Set the session cookie of ``principal`` (its key checked by the server's guard)."""
    nonce = secrets.token_urlsafe(18)
    expires = time.time() + TTL_S
    body = _b64(json.dumps({"k": principal.key_name, "e": expires, "n": nonce}).encode())
    _set(response, SESSION, f"{body}.{_mac('session:' + body)}", secure, TTL_S)
    return Session(principal, nonce, expires)


def read_session(request: Request) -> Session | None:
    """The request's session when its cookie is genuine, unexpired and its key unrevoked."""
    raw = request.cookies.get(SESSION, "")
    body, _, mac = raw.partition(".")
    if not body or not hmac.compare_digest(mac, _mac("session:" + body)):
        return None
    try:
        data = json.loads(_unb64(body))
        name, expires, nonce = str(data["k"]), float(data["e"]), str(data["n"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < time.time():
        return None
    principal = _principal(name)
    return Session(principal, nonce, expires) if principal is not None else None


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION, path=PATH)


def pre_nonce(request: Request) -> tuple[str, bool]:
    """This browser's ``kz_pre`` nonce, and whether it is new (then ``set_pre`` it)."""
    nonce = request.cookies.get(PRE, "")
    if len(nonce) >= 16:
        return nonce, False
    return secrets.token_urlsafe(18), True


def set_pre(response: Response, nonce: str, *, secure: bool) -> None:
    _set(response, PRE, nonce, secure, TTL_S)


def csrf_token(nonce: str) -> str:
    return _mac("csrf:" + nonce)


def check_csrf(request: Request, sent: str | None, session: Session | None) -> None:
    """ForbiddenError unless ``sent`` is the CSRF token of this session (or pre-session)."""
    nonce = session.nonce if session is not None else request.cookies.get(PRE, "")
    if not nonce or not sent or not hmac.compare_digest(sent, csrf_token(nonce)):
        raise ForbiddenError(
            "The form's CSRF token is missing or does not match this session. Reload the page "
            "and submit the form again."
        )
