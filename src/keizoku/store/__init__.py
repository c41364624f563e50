"""Where shared state lives: one store, picked by one setting.

Everything several keizoku processes must agree on (API keys and users, the audit
chains, deployments, experiments, server heartbeats, the locks around them) goes through
a :class:`~keizoku.store.base.Store`. Two exist:

- ``embedded`` (the default): files and SQLite under ``KEIZOKU_HOME``, exactly the
  layout keizoku has always written (``auth.db``, ``audit/``, ``deployments/``,
  ``experiments/``, ``servers/``), so existing homes need no migration;
- ``postgresql``: one ``keizoku_store`` schema in a PostgreSQL database, shared by every
  process and every machine that names it (:mod:`keizoku.store.postgres`).

Which one, in order (:func:`store_from_env`):

1. ``KEIZOKU_STORE=postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`` (``embedded``, or
   unset, means the default);
2. otherwise the embedded store of the home (:func:`keizoku.home.find_home`).

The spec (``keizoku.yaml``) has no store key: the store is where the spec's own state
lives, so it is a property of the deployment, set in the environment. With
``KEIZOKU_STORE`` set, MLflow's tracking and registry use the same database
(:func:`tracking_uri`) unless ``KEIZOKU_TRACKING_URI`` names another; artifacts stay in
``KEIZOKU_ARTIFACT_ROOT`` (or the home's ``artifacts/``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keizoku.errors import UserInputError
from keizoku.store.base import KeyRow, Store

__all__ = [
    "STORE_ENV",
    "KeyRow",
    "Store",
    "parse_store_url",
    "redact",
    "store_from_env",
    "tracking_uri",
]

STORE_ENV = "KEIZOKU_STORE"
_SCHEMES = ("postgresql", "postgres")
_FORM = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_stores: dict[tuple[int, str], Store] = {}


def redact(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k.lower() == "password" for k, _ in pairs)
    if "@" not in parts.netloc and not secret_query:
        return url  # nothing to hide (and sqlite:////path keeps its slashes)
    userinfo, at, where = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}@{where}" if at and user else where
    query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _bad(url: str, why: str) -> UserInputError:
    return UserInputError(
        f"{STORE_ENV}={redact(url)} {why}. Set {STORE_ENV} to {_FORM}, or unset it to keep "
        "the embedded store under KEIZOKU_HOME."
    )


def parse_store_url(url: str) -> str:
    """The canonical ``postgresql://`` form of ``url``; UserInputError when malformed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise _bad(url, "is not a valid URL (the port must be a number)") from None
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise _bad(url, f"names the store kind {parts.scheme or '(none)'!r}, not postgresql")
    if not parts.hostname:
        raise _bad(url, "names no host")
    if not parts.path.strip("/"):
        raise _bad(url, "names no database")
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


def _configured() -> str | None:
    value = os.environ.get(STORE_ENV, "").strip()
    return None if value in ("", "embedded") else value


def store_from_env() -> Store:
    """The store this process uses (see the module docstring for the order)."""
    url = _configured()
    key = (os.getpid(), url or "")
    found = _stores.get(key)
    if found is not None:
        return found
    store: Store
    if url is None:
        from keizoku.store.embedded import EmbeddedStore

        store = EmbeddedStore()
    else:
        from keizoku.store.postgres import PostgresStore

        store = PostgresStore(parse_store_url(url))
    _stores[key] = store
    return store


def tracking_uri() -> str | None:
    """MLflow's URI for ``KEIZOKU_STORE`` (the same database), or None when it is unset."""
    url = _configured()
    if url is None:
        return None
    return "postgresql+psycopg://" + parse_store_url(url).removeprefix("postgresql://")
