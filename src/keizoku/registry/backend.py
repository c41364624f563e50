"""The registry's database: its schema created once, under a lock; damage found and repaired.

MLflow (3.17.2) creates and migrates its tables whenever a tracking or registry
store object is built, in every process, with no lock between processes. Two
``keizoku train`` started at once on a fresh ``KEIZOKU_HOME`` both ran the
migration, both crashed (``table _alembic_tmp_model_versions already exists``)
and left the store broken for good. So, before any ``MlflowClient`` touches a
database store, :func:`prepare` (called by :func:`client`, the one place an
``MlflowClient`` is made):

1. takes an exclusive lock, waiting at most :data:`LOCK_WAIT_S`: an ``fcntl.flock``
   on ``<db file>.lock`` for SQLite (the default store: ``KEIZOKU_HOME/mlflow.db.lock``),
   an advisory lock in the database for PostgreSQL (shared by every home using it,
   e.g. through ``KEIZOKU_STORE``), ``KEIZOKU_HOME/mlflow.db.lock`` for another server;
2. inspects the schema (:func:`check`): a fresh database is created and migrated
   to MLflow's head here, once; a healthy one is left alone;
3. switches a SQLite file to WAL (persistent): readers never block the writer and
   writers wait on MLflow's 20 s ``busy_timeout`` instead of failing;
4. refuses a damaged store (leftover ``_alembic_tmp_*`` tables, a revision that
   is not the head, missing tables) with :class:`~keizoku.errors.ConflictError`
   (exit 8) naming the command that repairs it: ``keizoku doctor --repair``.

A SQLite file that does not exist yet (a new home) is first copied, under the same lock,
from a cache of an empty store already migrated to the head (:mod:`keizoku.registry.seed`,
checked before it is used); steps 2-4 then run on the copy. Without a usable cache the
store is migrated beside its path and renamed into place (:func:`_migrate_new`), and a
copy of it becomes the cache.

:func:`repair` backs the SQLite file up, drops leftover temporary tables whose
original table still holds the data, re-runs the migration and checks again; if
anything fails it restores the backup, so a failed repair changes nothing.
Each process prepares a store once, and a SQLite store is checked in full once: the
check that passed is recorded beside it (``mlflow.db.schema``: MLflow version, revision,
tables), and later processes verify the file against that record with ``sqlite3``
(:func:`_marked`). File, HTTP and Databricks stores are not databases and are left to
MLflow.

**Reads without MLflow.** Importing MLflow's tracking stack costs 4-5 s of CPU, and
most ``keizoku`` commands only read the registry (``models``, ``predict``, ``monitor``, a
server's model list). :func:`open_reader` gives them :class:`SqliteReader`: the subset of
``MlflowClient``'s read methods that :mod:`keizoku.registry.models` calls, answered with
``sqlite3`` from MLflow's own tables (MLflow stays the store and the only writer). Only
for a local SQLite store that :func:`prepare` would leave alone: the file exists, its
revision is the pinned MLflow's head (:data:`MLFLOW_HEAD`; any other revision takes the
full path), no ``_alembic_tmp_*`` table is left, the tables read exist, and it is in WAL
mode. Anything else (a fresh home, another store, a damaged one) gets None, and the
caller takes the ``MlflowClient`` path with its checks and its clear errors.

**Has anything changed?** A server polls the registry every few seconds, forever, and
almost every poll finds nothing new. :func:`registry_mark` answers for the price of two
``stat`` calls on a local SQLite store: every commit writes the database file or its WAL,
so their (inode, size, mtime) change. A file written less than :data:`RACY_S` ago could
be written again within the same timestamp tick without changing its size, so such a
mark is not given (None: read everything), like git's "racily clean" index entries.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from keizoku.errors import ConflictError, NotFoundError
from keizoku.home import (
    atomic_path,
    atomic_write_text,
    file_lock,
    home,
    mlflow_uri,
    remove_leftover_temporaries,
)
from keizoku.store import redact

__all__ = [
    "LOCK_WAIT_S",
    "artifact_root",
    "MLFLOW_HEAD",
    "RepairResult",
    "SqliteReader",
    "StoreHealth",
    "check",
    "client",
    "open_reader",
    "prepare",
    "registry_mark",
    "repair",
    "store_lock",
]

LOCK_WAIT_S = 120.0  # a migration of a large store takes seconds; anything longer is stuck
TMP_PREFIX = "_alembic_tmp_"
REPAIR_COMMAND = "keizoku doctor --repair"
_DATABASES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")
_prepared: set[str] = set()
MLFLOW_HEAD = "dc11669786a5"  # MLflow 3.17.2's schema head (tests/registry checks it)
DELETED = "Deleted_Internal"  # MLflow's stage of a deleted version, kept as a row
PROMPT_TAG = "mlflow.prompt.is_prompt"  # MLflow keeps prompts as registered models tagged so
READ_TABLES = frozenset(
    {
        "registered_models",
        "registered_model_aliases",
        "model_versions",
        "model_version_tags",
        "registered_model_tags",
        "latest_metrics",
    }
)
_healthy: set[Path] = set()


@dataclass(frozen=True)
class StoreHealth:
    """What :func:`check` found in a store's schema."""

    uri: str
    revision: str | None
    head: str
    known_revision: bool
    tables: tuple[str, ...]
    missing_tables: tuple[str, ...]
    leftover_tables: tuple[str, ...]  # ``_alembic_tmp_X`` whose table ``X`` still exists
    orphan_tables: tuple[str, ...]  # ``_alembic_tmp_X`` whose table ``X`` is gone
    journal_mode: str | None = None

    @property
    def fresh(self) -> bool:
        return all(t.startswith("alembic_") for t in self.tables)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        if self.fresh:
            return []
        out = []
        for t in self.leftover_tables + self.orphan_tables:
            out.append(f"a table '{t}' left by an interrupted schema migration")
        if not self.known_revision:
            out.append(
                f"schema revision {self.revision} is unknown to the installed MLflow "
                f"(head {self.head}): the store was written by another MLflow version"
            )
        elif self.revision != self.head:
            out.append(f"schema revision {self.revision} is not the head {self.head}")
        if self.missing_tables:
            shown = ", ".join(self.missing_tables[:3])
            extra = len(self.missing_tables) - 3
            more = f" and {extra} more" if extra > 0 else ""
            out.append(f"missing table(s) {shown}{more}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "ok": self.ok,
            "fresh": self.fresh,
            "revision": self.revision,
            "head": self.head,
            "journal_mode": self.journal_mode,
            "problems": self.problems(),
        }


@dataclass
class RepairResult:
    """What :func:`repair` did."""

    before: StoreHealth
    after: StoreHealth
    backup: Path | None = None
    dropped: list[str] = field(default_factory=list)


def is_database(uri: str) -> bool:
    """True for a SQLAlchemy URL MLflow stores in a database (``sqlite:///``, ``postgresql://``)."""
    scheme = urlparse(uri).scheme.split("+", 1)[0]
    return scheme in _DATABASES


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if raw in ("", ":memory:"):
        return None
    return Path(raw)


RACY_S = 2.0  # a file written this recently may change again within its mtime's tick


def registry_mark(uri: str) -> tuple[object, ...] | None:
    """A value that changes with every write to the registry at ``uri``; None when it
    cannot tell (not a local SQLite file, a file written in the last :data:`RACY_S`
    seconds, an unreadable one): then the caller reads everything."""
    db = sqlite_path(uri)
    if db is None:
        return None
    now_ns = time.time_ns()
    marks: list[object] = [str(db)]
    for path in (db, db.with_name(db.name + "-wal")):
        try:
            st = path.stat()
        except FileNotFoundError:
            marks.append(None)
            continue
        except OSError:
            return None
        if now_ns - st.st_mtime_ns < RACY_S * 1e9:
            return None
        marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(marks)


def lock_path(uri: str) -> Path:
    db = sqlite_path(uri)
    return db.with_name(db.name + ".lock") if db is not None else home() / "mlflow.db.lock"


@contextmanager
def store_lock(uri: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the exclusive lock that serialises schema work on ``uri`` across processes.

    For PostgreSQL, an advisory lock in that database (so processes of every home and
    machine sharing it take the same lock); otherwise an ``flock`` on :func:`lock_path`.
    """
    scheme, sep, rest = uri.partition("://")
    if scheme.split("+", 1)[0] in ("postgresql", "postgres") and sep:
        from keizoku.store.postgres import PostgresStore

        with PostgresStore(f"postgresql://{rest}").lock("mlflow/registry", wait_s):
            yield
        return
    with file_lock(lock_path(uri), wait_s=wait_s):
        yield


def _quiet() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_TRACKING_DISABLE_TELEMETRY", "true")
    # psycopg warns when MLflow's SQLAlchemy ends a pipeline after an error MLflow handles
    for name in ("mlflow", "alembic", "mlflow.store.db.utils", "psycopg"):
        _set_level(logging.getLogger(name), logging.ERROR)


def _set_level(logger: logging.Logger, level: int) -> None:
    """``logger.setLevel(level)`` unless it has that level: each call clears the cache of
    every logger in the process (hundreds once MLflow and SQLAlchemy are imported)."""
    if logger.level != level:
        logger.setLevel(level)


def client() -> Any:
    """The ``MlflowClient`` of this home's store (tracking and registry share one URI)."""
    _quiet()
    import mlflow
    from mlflow import MlflowClient

    uri = mlflow_uri()
    prepare(uri)  # schema created once, under a lock; a damaged store is refused
    _skip_checked_schema()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


_schema_check: list[Any] = []  # MLflow's own check, once it is wrapped


def _skip_checked_schema() -> None:
    """Spare MLflow its schema check of a store :func:`prepare` has checked in this process.

    MLflow checks a database store's revision against its head when it first opens the
    store in a process, and finds the head by reading each of its ~70 alembic migration
    scripts: ~25 ms of CPU in every command that writes to the registry. :func:`prepare`
    has just checked the same (the revision is the installed MLflow's head: from the
    schema marker written for this MLflow version, or in full). A store it has not
    checked (a URL it was not given) still gets MLflow's check.
    """
    if _schema_check:
        return
    from mlflow.store.db import utils

    check: Callable[[Any], None] = utils._verify_schema

    def verify(engine: Any) -> None:
        if engine.url.render_as_string(hide_password=False) not in _prepared:
            check(engine)

    _schema_check.append(check)
    setattr(utils, "_verify_schema", verify)  # noqa: B010 - MLflow's module, read at each use


def artifact_root() -> str:
    """Where MLflow puts new experiments' artifacts: ``KEIZOKU_ARTIFACT_ROOT`` (a folder, or
    S3-compatible storage ``s3://bucket/prefix``, its endpoint in ``MLFLOW_S3_ENDPOINT_URL``),
    else ``KEIZOKU_HOME/artifacts``. An S3 root needs the ``s3`` extra (boto3) and a bucket
    name; the error says so before anything is trained (docs/log.md)."""
    value = os.environ.get("KEIZOKU_ARTIFACT_ROOT", "").strip()
    if not value:
        return (home() / "artifacts").as_uri()
    parsed = urlparse(value)
    if parsed.scheme == "s3":
        from keizoku.errors import UserInputError, require_extra

        if not parsed.netloc:
            raise UserInputError(
                f"KEIZOKU_ARTIFACT_ROOT {value!r} names no bucket: write s3://BUCKET/PREFIX."
            )
        require_extra("boto3", "s3")
        return value.rstrip("/")
    if parsed.scheme == "" and not value.startswith("/"):
        return Path(value).expanduser().resolve().as_uri()  # a relative folder: absolute
    return value.rstrip("/")


def prepare(uri: str) -> None:
    """Make sure the store at ``uri`` has MLflow's current schema before MLflow opens it."""
    if uri in _prepared or not is_database(uri):
        return
    db = sqlite_path(uri)
    with store_lock(uri):
        from keizoku.registry.seed import restore, save

        new = db if db is not None and not db.exists() else None
        seeded = new is not None and restore(new)  # a migrated empty store, if cached
        if new is not None and seeded:
            _mark_seeded(new)  # verified by restore: the full check would find the same
        elif new is not None:
            _migrate_new(new)  # then checked, switched to WAL and marked as any store
        if db is None or not _marked(db):
            _prepare(uri, db)
        if new is not None and not seeded:
            save(new)  # migrated just now: the next new home copies it
    _prepared.add(uri)


def _prepare(uri: str, db: Path | None) -> None:
    """The full check with SQLAlchemy and alembic (the caller holds the lock)."""
    engine = _engine(uri)
    try:
        health = _check(engine, uri)
        if health.fresh:
            _initialize(engine)
            engine.dispose()  # else, after this check, the WAL switch fails (seen: mode 'delete')
            health = _check(engine, uri)
        elif not health.ok:
            raise ConflictError(damage_message(health))
        _use_wal(engine, uri)
        if db is not None and health.ok and _journal_mode(engine) == "wal":
            _mark(db, health.revision, health.tables)
    finally:
        engine.dispose()


# ---- the schema marker: prepare's full check once per SQLite store, not once per process
#
# A full check imports SQLAlchemy's ORM, MLflow's table models and alembic's migration
# scripts. After one passes, ``mlflow.db.schema`` records the MLflow version, the schema
# revision and the tables it found. A later process checks the file against that with
# sqlite3 (same revision, every table still there, no ``_alembic_tmp_*`` table, WAL) and
# the installed MLflow's version: the same verdict as the full check, since MLflow's head
# and tables follow from its version. Anything else takes the full check (and its errors).


def _marker(db: Path) -> Path:
    return db.with_name(db.name + ".schema")


@functools.cache
def _mlflow_version() -> str:
    """The installed MLflow's version (looked up once a process: each lookup scans the
    installed distributions)."""
    from importlib.metadata import version

    return version("mlflow")


def _mark(db: Path, revision: str | None, tables: Sequence[str]) -> None:
    note = {"mlflow": _mlflow_version(), "revision": revision, "tables": list(tables)}
    atomic_write_text(_marker(db), json.dumps(note, indent=1) + "\n")


def _mark_seeded(db: Path) -> None:
    """Switch a store just copied from the cache to WAL and mark it, with sqlite3 only.

    ``seed.restore`` checked the copy more strictly than the full check does (exactly the
    head's tables, no row but the revision), so SQLAlchemy and alembic (about 2 s of
    imports) are not needed to trust it. If the WAL switch fails, nothing is marked and
    the full check runs as for any other store.
    """
    from keizoku.registry.seed import HEAD_TABLES

    try:
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.Error:
        return
    if mode is None or str(mode[0]).lower() != "wal":
        return
    _mark(db, MLFLOW_HEAD, sorted(HEAD_TABLES))


def _marked(db: Path) -> bool:
    """True when ``db`` is, checked with sqlite3, the store the marker describes."""
    try:
        note = json.loads(_marker(db).read_text())
        if not db.is_file() or note["mlflow"] != _mlflow_version():
            return False
        return _wal_store_at(db, note["revision"], set(note["tables"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _wal_store_at(db: Path, revision: str, needed: set[str]) -> bool:
    """``db`` (read with sqlite3) is at ``revision``, has ``needed``, no temporary table, WAL."""
    try:
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
            if not needed | {"alembic_version"} <= tables:
                return False
            revisions = [str(r[0]) for r in conn.execute("SELECT version_num FROM alembic_version")]
            mode = conn.execute("PRAGMA journal_mode").fetchone()
    except sqlite3.Error:
        return False
    return (
        revisions == [revision]
        and not any(t.startswith(TMP_PREFIX) for t in tables)
        and mode is not None
        and str(mode[0]).lower() == "wal"
    )


def check(uri: str) -> StoreHealth:
    """Inspect the store's schema (under the lock) without changing anything."""
    if not is_database(uri):
        raise ConflictError(
            f"The tracking store '{redact(uri)}' is not a database: keizoku doctor checks "
            "sqlite:///, postgresql:// and mysql:// stores. Set KEIZOKU_TRACKING_URI to one."
        )
    with store_lock(uri):
        engine = _engine(uri)
        try:
            return _check(engine, uri)
        finally:
            engine.dispose()


def repair(uri: str) -> RepairResult:
    """Back up, drop leftover migration tables, migrate to the head; restore on failure."""
    with store_lock(uri):
        engine = _engine(uri)
        try:
            before = _check(engine, uri)
            if before.ok:
                return RepairResult(before=before, after=before)
            _refuse_unrepairable(before)
            backup = _backup(uri)
            try:
                dropped = _repair(engine, before)
                _use_wal(engine, uri)
                after = _check(engine, uri)
                if not after.ok:
                    raise ConflictError(
                        f"The repair of {redact(uri)} left: {'; '.join(after.problems())}."
                    )
            except Exception as exc:
                engine.dispose()
                _restore(uri, backup)
                where = f" The store is back as it was (backup {backup})." if backup else ""
                raise ConflictError(
                    f"Could not repair the registry store {redact(uri)}: {type(exc).__name__}: "
                    f"{_first_line(exc)}.{where} Restore an older backup of the store, or "
                    "move it aside to start a new registry."
                ) from exc
            return RepairResult(before=before, after=after, backup=backup, dropped=dropped)
        finally:
            engine.dispose()


def _engine(uri: str) -> Any:
    import sqlalchemy

    for name in ("alembic", "mlflow.store.db.utils"):  # migrations log at INFO on stderr
        _set_level(logging.getLogger(name), logging.ERROR)

    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        return sqlalchemy.create_engine(uri, connect_args={"timeout": 30})
    return sqlalchemy.create_engine(uri, pool_pre_ping=True)


@functools.cache
def _head() -> str:
    """The installed MLflow's schema head (its migration scripts are read once a process)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]


@functools.cache
def _scripts() -> Any:
    """The installed MLflow's alembic migration scripts, read once a process."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config(""))  # type: ignore[no-untyped-call]


def _known(revision: str | None) -> bool:
    if revision is None:
        return True
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _check(engine: Any, uri: str) -> StoreHealth:
    import sqlalchemy
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.db.utils import _get_schema_version

    tables = tuple(sorted(sqlalchemy.inspect(engine).get_table_names()))
    present = set(tables)
    tmp = [t for t in tables if t.startswith(TMP_PREFIX)]
    revision = _get_schema_version(engine) if "alembic_version" in present else None  # type: ignore[no-untyped-call]
    return StoreHealth(
        uri=redact(uri),  # printed by doctor and in errors: never with a password
        revision=revision,
        head=_head(),
        known_revision=_known(revision),
        tables=tables,
        missing_tables=tuple(sorted(set(Base.metadata.tables) - present)),
        leftover_tables=tuple(t for t in tmp if t.removeprefix(TMP_PREFIX) in present),
        orphan_tables=tuple(t for t in tmp if t.removeprefix(TMP_PREFIX) not in present),
        journal_mode=_journal_mode(engine) if sqlite_path(uri) else None,
    )


def _initialize(engine: Any) -> None:
    from mlflow.store.db.utils import _initialize_tables

    _initialize_tables(engine)  # type: ignore[no-untyped-call]


def _migrate_new(db: Path) -> None:
    """Create the SQLite store ``db`` (absent) at MLflow's head: built beside it, synced
    and renamed into place (``home.atomic_path``), so that no process ever opens a store
    that is half made and a crash at any point leaves none (the next command migrates,
    and removes what the crashed one left).

    Built aside, it needs no sync per commit: MLflow's migrations commit about 350 times,
    and SQLite's default syncs the file and its journal at each (~1,100 ``fdatasync``:
    0.3 s on a quiet SSD, seconds on a busy or slow disk), so the temporary file is
    migrated with ``synchronous=OFF`` and synced once, before the rename.
    """
    from sqlalchemy import event

    def unsynced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    remove_leftover_temporaries(db)  # a killed build's (we hold the store's lock)
    with atomic_path(db) as tmp:
        engine = _engine(f"sqlite:///{tmp}")
        event.listen(engine, "connect", unsynced)
        try:
            _initialize(engine)
        finally:
            engine.dispose()


def _repair(engine: Any, health: StoreHealth) -> list[str]:
    from mlflow.store.db.utils import _upgrade_db

    with engine.begin() as conn:
        for table in health.leftover_tables:
            conn.exec_driver_sql(f'DROP TABLE "{table}"')
    if health.revision is None:
        _initialize(engine)
    else:
        _upgrade_db(engine)  # type: ignore[no-untyped-call]
    return list(health.leftover_tables)


def _refuse_unrepairable(health: StoreHealth) -> None:
    if health.orphan_tables:
        names = ", ".join(health.orphan_tables)
        raise ConflictError(
            f"The registry store {health.uri} has {names} but not the original table(s): an "
            "interrupted migration moved the data there. keizoku does not guess: restore a "
            "backup of the store, or move it aside to start a new registry."
        )
    if not health.known_revision:
        raise ConflictError(
            f"The registry store {health.uri} has schema revision {health.revision}, unknown to "
            f"the installed MLflow (head {health.head}): it was written by another MLflow "
            "version. keizoku needs the MLflow it pins (pip install keizoku installs it)."
        )


def damage_message(health: StoreHealth) -> str:
    return (
        f"The registry store {health.uri} is damaged: {'; '.join(health.problems())}. "
        f"Repair it with: {REPAIR_COMMAND} (it backs the store up first)"
    )


def _journal_mode(engine: Any) -> str | None:
    with engine.connect() as conn:
        row = conn.exec_driver_sql("PRAGMA journal_mode").fetchone()
    return str(row[0]).lower() if row else None


def _use_wal(engine: Any, uri: str) -> None:
    """Switch a SQLite store to WAL once (the mode is stored in the file)."""
    if sqlite_path(uri) is None or _journal_mode(engine) == "wal":
        return
    import sqlalchemy

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except sqlalchemy.exc.OperationalError:  # busy: the next command switches it
        return


def _backup(uri: str) -> Path | None:
    db = sqlite_path(uri)
    if db is None or not db.exists():
        return None
    target = db.with_name(f"{db.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    with closing(sqlite3.connect(db, timeout=30)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def _restore(uri: str, backup: Path | None) -> None:
    db = sqlite_path(uri)
    if db is None or backup is None:
        return
    with closing(sqlite3.connect(backup)) as src, closing(sqlite3.connect(db, timeout=30)) as dst:
        src.backup(dst)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    aliases: dict[str, int]


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    creation_timestamp: int
    run_id: str | None
    source: str
    storage_location: str | None
    tags: dict[str, str]
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float]


@dataclass(frozen=True)
class Run:
    data: RunData


class SqliteReader:
    """``MlflowClient``'s registry reads, over one SQLite file (a connection per call: each
    public method opens its own, and its queries share it; inside :meth:`reading`, every
    call shares one)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._conn is not None:
            yield self._conn
            return
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[SqliteReader]:
        """Every read inside goes through one connection, closed at the end.

        SQLite parses MLflow's schema once per connection (0.5 ms): ``list_versions`` read
        each version's run through a connection of its own. No transaction is held between
        queries, so each still reads the latest commit.
        """
        if self._conn is not None:
            yield self
            return
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            self._conn = conn
            try:
                yield self
            finally:
                self._conn = None

    @staticmethod
    def _rows(conn: sqlite3.Connection, sql: str, *args: object) -> list[tuple[object, ...]]:
        return conn.execute(sql, args).fetchall()

    def search_registered_models(self) -> list[RegisteredModel]:
        with self._connect() as conn:
            names = [
                str(r[0])
                for r in self._rows(conn, "SELECT name FROM registered_models ORDER BY name")
            ]
            return [RegisteredModel(n, self._aliases(conn, n)) for n in names]

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self._connect() as conn:
            if not self._rows(conn, "SELECT name FROM registered_models WHERE name = ?", name):
                raise NotFoundError(f"Registered model '{name}' not found.")
            return RegisteredModel(name, self._aliases(conn, name))

    def is_registered_model(self, name: str) -> bool:
        """Whether ``MlflowClient.get_registered_model(name)`` finds a model: a registered
        model of that name that is not a prompt (``PROMPT_TAG``, MLflow's own test)."""
        sql = (
            "SELECT 1 FROM registered_models m WHERE m.name = ? AND NOT EXISTS "
            "(SELECT 1 FROM registered_model_tags t WHERE t.name = m.name AND t.key = ?)"
        )
        with self._connect() as conn:
            return bool(self._rows(conn, sql, name, PROMPT_TAG))

    def search_model_versions(self, filter_string: str) -> list[ModelVersion]:
        """Only the filter :mod:`keizoku.registry.models` uses: ``name='NAME'``."""
        name = filter_string.removeprefix("name='").removesuffix("'")
        if filter_string != f"name='{name}'" or "'" in name:
            raise ValueError(f"SqliteReader reads no filter but name='NAME': {filter_string!r}")
        sql = "SELECT version FROM model_versions WHERE name = ? AND current_stage != ?"
        with self._connect() as conn:
            numbers = [int(str(r[0])) for r in self._rows(conn, sql, name, DELETED)]
            return [self._version(conn, name, v) for v in numbers]

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        with self._connect() as conn:
            return self._version(conn, name, version)

    def _version(self, conn: sqlite3.Connection, name: str, version: str | int) -> ModelVersion:
        sql = (
            "SELECT creation_time, run_id, source, storage_location FROM model_versions "
            "WHERE name = ? AND version = ? AND current_stage != ?"
        )
        rows = self._rows(conn, sql, name, int(version), DELETED)
        if not rows:
            raise NotFoundError(f"Model version {name}:{version} not found.")
        created, run_id, source, location = rows[0]
        tag_sql = "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?"
        tag_map = {str(k): str(v) for k, v in self._rows(conn, tag_sql, name, int(version))}
        aliases = sorted(a for a, v in self._aliases(conn, name).items() if v == int(version))
        return ModelVersion(
            name=name,
            version=int(version),
            creation_timestamp=int(str(created)),
            run_id=str(run_id) if run_id else None,
            source=str(source),
            storage_location=str(location) if location else None,
            tags=tag_map,
            aliases=aliases,
        )

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        with self._connect() as conn:
            version = self._aliases(conn, name).get(alias)
            if version is None:
                raise NotFoundError(f"Model '{name}' has no alias '{alias}'.")
            return self._version(conn, name, version)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        mv = self.get_model_version(name, version)
        return mv.storage_location or mv.source

    def get_run(self, run_id: str) -> Run:
        sql = "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?"
        with self._connect() as conn:
            rows = self._rows(conn, sql, run_id)
        metrics = {str(k): float("nan") if nan else float(str(v)) for k, v, nan in rows}
        return Run(RunData(metrics))

    def _aliases(self, conn: sqlite3.Connection, name: str) -> dict[str, int]:
        sql = "SELECT alias, version FROM registered_model_aliases WHERE name = ?"
        return {str(a): int(str(v)) for a, v in self._rows(conn, sql, name)}


def open_reader(db: Path | None) -> SqliteReader | None:
    """A reader of the SQLite file ``db`` when it is a healthy, prepared store; else None.

    The check, once per process, waits for the store's lock like :func:`prepare`: no
    command reads a store while another one works on its schema.
    """
    if db is None or not db.is_file():
        return None
    if db not in _healthy:
        with store_lock(f"sqlite:///{db}"):
            if not _ready(db):
                return None
        _healthy.add(db)
    return SqliteReader(db)


def _ready(db: Path) -> bool:
    return _wal_store_at(db, MLFLOW_HEAD, set(READ_TABLES))
