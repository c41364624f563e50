"""Who may call what: API keys (``keizoku.auth``), secure by default.

* Keys configured: predictions and reads need a ``predict`` (or ``admin``) key; admin
  routes need an ``admin`` key.
* No keys: the server only binds to loopback; predictions and reads are open to local
  callers, and admin routes are off.
* Bound to a non-loopback address: keys are always required, even if every key is
  revoked later (then nothing is allowed).

A valid token is remembered for ``ttl_s`` seconds (by its sha256, never in clear), so a
revoked key stops working within that time. Keys are never logged.

When the store does not answer (``KEIZOKU_STORE`` down, ``auth.db`` unreadable), a key
this server saw valid in the last ``grace_s`` seconds keeps working, and so does the last
answer to "are keys configured": predictions from loaded models go on through a short
store outage. A key revoked while the store is down cannot be revoked anyway (revoking
writes to the store); decision 0028 weighs this. A key never seen valid gets 503.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass, field

from starlette.requests import Request

from keizoku.auth import Principal, authenticate, keys_configured, require_role
from keizoku.errors import AuthError, ForbiddenError, UserInputError
from keizoku.serving.ratelimit import RateLimit, wrong_keys

__all__ = ["Guard", "check_bind", "is_loopback"]

NO_ADMIN = (
    "Admin routes are off because no API keys are configured. Create an admin key with "
    "`keizoku keys create --role admin --name NAME` and send it as 'Authorization: Bearer <key>'."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str) -> None:
    """Refuse to serve beyond this machine without API keys."""
    if not is_loopback(host) and not keys_configured():
        raise UserInputError(
            f"Refusing to bind to {host!r} without API keys: anyone who can reach it could use "
            "the models. Create a key first (`keizoku keys create --role admin --name NAME`), or "
            "bind to 127.0.0.1."
        )


def _token(request: Request) -> str | None:
    from keizoku.auth import token_from_headers

    return token_from_headers(request.headers)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Guard:
    """Checks a request's key against the role a route needs."""

    loopback: bool = True
    ttl_s: float = 5.0
    limit: RateLimit | None = None  # requests per caller (``--rate-limit``)
    failures: RateLimit = field(default_factory=wrong_keys)  # wrong keys per address
    grace_s: float = 300.0  # the store is away: keys seen valid this recently keep working
    _configured: tuple[float, bool] = (0.0, False)
    _retry_at: float = 0.0  # after a store error, ask it again only from then on
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _seen_valid: set[str] = field(default_factory=set)  # sha256 of keys once valid here
    _seen_wrong: set[str] = field(default_factory=set)  # ... and of wrong keys, counted once

    def keys_required(self) -> bool:
        if not self.loopback:
            return True
        checked, value = self._configured
        now = time.monotonic()
        if now - checked > self.ttl_s:
            known = checked > 0 and now - checked <= self.grace_s
            if known and now < self._retry_at:
                return value
            try:
                value = keys_configured()
            except Exception:
                if not known:
                    raise
                self._retry_at = now + 1.0
                return value  # the store is away: the last answer stands
            self._configured = (now, value)
        return value

    def principal(self, request: Request, role: str) -> Principal | None:
        """The caller (``None`` when keys are off); raises AuthError/ForbiddenError."""
        if not self.keys_required():
            if role == "admin":
                raise ForbiddenError(NO_ADMIN)
            self._throttle(f"address {_address(request)}")
            return None
        principal = self.check_key(request, _token(request))
        self._throttle(f"key {principal.key_name!r}")
        return require_role(principal, role)

    def check_key(self, request: Request, token: str | None) -> Principal:
        """``token``'s principal (AuthError otherwise); guessing is throttled per address.

        A key seen valid in the last ``ttl_s`` seconds is answered from memory. From an
        address that sent too many *distinct* wrong keys, a key this server has never seen
        valid is refused (429) unchecked. A key seen valid before (a client behind the same
        proxy) is still checked, and one wrong key sent again (a client with a revoked key)
        counts once, so neither blocks the other callers of an address.
        """
        principal = self._lookup(token) if token else None
        if principal is not None:
            return principal
        address = f"address {_address(request)}"
        digest = hashlib.sha256((token or "").encode()).hexdigest()
        if token and digest not in self._seen_valid:
            self.failures.check(address)
        stale = self._stale(token)
        if stale is not None and time.monotonic() < self._retry_at:
            return stale
        try:
            principal = authenticate(token)
        except AuthError:
            if token and digest not in self._seen_wrong:
                _bounded_add(self._seen_wrong, digest)
                self.failures.spend(address)
            raise
        except Exception:  # the store does not answer
            if stale is None:
                raise
            self._retry_at = time.monotonic() + 1.0
            return stale
        _bounded_add(self._seen_valid, digest)
        self._seen_wrong.discard(digest)
        self._remember(token or "", principal)
        return principal

    def _throttle(self, caller: str) -> None:
        if self.limit is not None:
            self.limit.take(caller)

    def _lookup(self, token: str) -> Principal | None:
        hit = self._cache.get(hashlib.sha256(token.encode()).hexdigest())
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def _stale(self, token: str | None) -> Principal | None:
        """``token``'s principal when it was valid here within ``grace_s`` (a store outage)."""
        if not token:
            return None
        hit = self._cache.get(hashlib.sha256(token.encode()).hexdigest())
        if hit is None or hit[0] + self.grace_s < time.monotonic():
            return None
        return hit[1]

    def _remember(self, token: str, principal: Principal) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        digest = hashlib.sha256(token.encode()).hexdigest()
        self._cache[digest] = (time.monotonic() + self.ttl_s, principal)


def _bounded_add(seen: set[str], digest: str, limit: int = 100_000) -> None:
    """Remember ``digest`` in ``seen``, forgetting everything at ``limit`` (bounded memory)."""
    if len(seen) >= limit:
        seen.clear()
    seen.add(digest)
