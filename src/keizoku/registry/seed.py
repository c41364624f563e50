"""A migrated, empty registry store kept once per machine and copied into each new home.

Creating a home's MLflow store runs MLflow's alembic migrations: about 2 s of CPU for
every first ``keizoku train`` and every test that starts from an empty home. The result
is always the same file, so :func:`keizoku.registry.backend.prepare` keeps one:

- **What**: a SQLite file at the pinned MLflow's schema head (:data:`MLFLOW_HEAD`), with
  nothing in it but what the migrations write (the revision, the ``default`` workspace).
- **Where**: :func:`cache_dir`, ``KEIZOKU_CACHE_DIR`` if set, else
  ``$XDG_CACHE_HOME/keizoku``, else ``~/.cache/keizoku``; the file name carries the MLflow
  version and the head (:func:`cache_path`), so an upgrade never reads an older one.
- **When**: only for a SQLite store whose file does not exist yet, under the store's
  lock. :func:`restore` copies the cache beside the store, checks the copy
  (:func:`usable`) and renames it into place; :func:`prepare`'s usual check, WAL switch
  and schema marker then follow. Without a usable cache the store is migrated as before
  and :func:`save` keeps a copy of it, checked the same way, written atomically.
- **Never in the way**: a cache that cannot be read or written (an unwritable folder, a
  damaged or foreign file) is logged at debug and costs only the migration's time. A
  refused file is never copied into a home, and the next new home's store replaces it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from keizoku.home import atomic_path
from keizoku.registry.backend import MLFLOW_HEAD, _mlflow_version

__all__ = [
    "HEAD_ROWS",
    "HEAD_TABLES",
    "HEAD_TRIGGERS",
    "cache_dir",
    "cache_path",
    "restore",
    "save",
    "usable",
]

log = logging.getLogger(__name__)

# What the migrations to MLFLOW_HEAD (MLflow 3.17.2) create, and the only rows they write;
# tests/registry/test_seed.py compares them with a store migrated there.
HEAD_TABLES = frozenset(
    {
        "alembic_version", "assessments", "budget_policies", "datasets", "endpoint_bindings",
        "endpoint_model_mappings", "endpoint_tags", "endpoints", "entity_associations",
        "evaluation_dataset_records", "evaluation_dataset_tags", "evaluation_datasets",
        "experiment_tags", "experiments", "guardrail_configs", "guardrails", "input_tags",
        "inputs", "issues", "job_locks", "jobs", "label_schemas", "latest_metrics",
        "logged_model_metrics", "logged_model_params", "logged_model_tags", "logged_models",
        "mcp_access_endpoints", "mcp_server_aliases", "mcp_server_tags",
        "mcp_server_version_tags", "mcp_server_versions", "mcp_servers", "metrics",
        "model_definitions", "model_version_tags", "model_versions", "online_scoring_configs",
        "params", "registered_model_aliases", "registered_model_tags", "registered_models",
        "review_queue_items", "review_queue_label_schemas", "review_queue_users",
        "review_queues", "runs", "scheduler_leases", "scorer_versions", "scorers", "secrets",
        "span_metrics", "spans", "sql_assessment_daily_rollups", "sql_span_cost_daily_rollups",
        "sql_trace_metric_daily_rollups", "sql_trace_rollup_rebuild_queue", "tags",
        "trace_info", "trace_metrics", "trace_request_metadata", "trace_tags",
        "webhook_events", "webhooks", "workspaces",
    }
)  # fmt: skip
HEAD_TRIGGERS = frozenset({"prevent_secrets_aad_mutation"})
HEAD_ROWS: dict[str, list[tuple[object, ...]]] = {
    "alembic_version": [(MLFLOW_HEAD,)],
    "workspaces": [("default", "Default workspace for legacy resources", None, None, None)],
}


class _Refused(Exception):
    """A cached or copied store that :func:`usable` does not accept."""


def cache_dir() -> Path:
    """``KEIZOKU_CACHE_DIR``, else ``$XDG_CACHE_HOME/keizoku``, else ``~/.cache/keizoku``."""
    own = os.environ.get("KEIZOKU_CACHE_DIR", "").strip()
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "keizoku"


def cache_path() -> Path:
    """The cached store of the installed MLflow at :data:`MLFLOW_HEAD`."""
    return cache_dir() / f"mlflow-{_mlflow_version()}-{MLFLOW_HEAD}.db"


def usable(path: Path) -> bool:
    """True when ``path``, opened read-only, is a store migrated to the head and nothing else.

    Intact (``PRAGMA quick_check``); exactly the tables and triggers the migrations create
    (:data:`HEAD_TABLES`, :data:`HEAD_TRIGGERS`: no ``_alembic_tmp_*`` table, no view);
    no row but :data:`HEAD_ROWS` (one revision, the head; the ``default`` workspace).
    """
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            return _intact(conn) and _empty_at_head(conn)
    except sqlite3.Error:
        return False


def _intact(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]


def _empty_at_head(conn: sqlite3.Connection) -> bool:
    sql = "SELECT type, name FROM sqlite_master WHERE type != 'index'"
    found = {(str(kind), str(name)) for kind, name in conn.execute(sql)}
    if found != {("table", t) for t in HEAD_TABLES} | {("trigger", t) for t in HEAD_TRIGGERS}:
        return False
    for table in sorted(HEAD_TABLES):
        rows = conn.execute(f'SELECT * FROM "{table}" LIMIT 2').fetchall()
        if rows != HEAD_ROWS.get(table, []):
            return False
    return True


def restore(db: Path) -> bool:
    """Put a copy of the cached store at ``db`` (which does not exist) if it is usable."""
    source = cache_path()
    try:
        with atomic_path(db) as tmp:
            shutil.copyfile(source, tmp)
            if not usable(tmp):
                raise _Refused(f"{source} is not an empty store at {MLFLOW_HEAD}")
    except (OSError, _Refused) as exc:
        log.debug("registry store %s not seeded from the cache: %s", db, exc)
        return False
    log.debug("registry store %s seeded from %s", db, source)
    return True


def save(db: Path) -> None:
    """Keep a copy of the freshly migrated store ``db`` as the cache (best effort)."""
    target = cache_path()
    try:
        with atomic_path(target) as tmp:
            _copy_store(db, tmp)
            if not usable(tmp):
                raise _Refused(f"{db} is not an empty store at {MLFLOW_HEAD}")
    except (OSError, sqlite3.Error, _Refused) as exc:
        log.debug("registry store %s not kept in the cache %s: %s", db, target, exc)


def _copy_store(db: Path, target: Path) -> None:
    """A consistent copy of ``db`` (WAL included) as one rollback-journal file."""
    with closing(sqlite3.connect(db, timeout=30)) as src:
        with closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
