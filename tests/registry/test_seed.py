"""The cache of a migrated, empty registry store (``keizoku.registry.seed``), on real SQLite
and the real MLflow: a new home is copied from it, is a registry of its own, and a cache
that is not exactly an empty store at the head is never copied, only replaced.

Each test has a cache folder of its own (``KEIZOKU_CACHE_DIR``). Whether a home came
from the cache is read from the files, never from timing: the first new home writes the
cache, a home copied from it leaves the cache file as it was (same inode, same mtime),
and a home that migrated replaces it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from keizoku.home import mlflow_uri
from keizoku.registry import backend, models, seed
from keizoku.registry.backend import MLFLOW_HEAD
from kzsupport import KEIZOKU_EXE


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("KEIZOKU_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A first new home (``first``) and the cache its migration wrote (``cache``), made once
    for this file: a migration costs a second of CPU, and each test gets a copy."""
    root = tmp_path_factory.mktemp("seed-first")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEIZOKU_CACHE_DIR", str(root / "cache"))
        new_home(root, "first", patch)
    return root


@pytest.fixture
def kept(tmp_path: Path, cache: Path, migrated: Path) -> Path:
    """The cache file, written when the first new home's store was migrated (this test's
    copy of it, and of that home at ``tmp_path / "first"``)."""
    shutil.copytree(migrated / "first", tmp_path / "first")
    shutil.copytree(migrated / "cache", cache)
    return seed.cache_path()


def new_home(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new KEIZOKU_HOME under ``root`` whose store ``prepare`` creates; its SQLite file."""
    monkeypatch.setenv("KEIZOKU_HOME", str(root / name))
    backend.prepare(mlflow_uri())
    return root / name / "mlflow.db"


def stamp(path: Path) -> tuple[int, int]:
    """What replacing the file (``os.replace`` of a new one) changes."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def named(db: Path, kind: str) -> set[str]:
    found = rows(db, f"SELECT name FROM sqlite_master WHERE type = '{kind}'")
    return {str(r[0]) for r in found}


def at_head(db: Path) -> bool:
    """The store a command can use: the head, checked and marked by ``prepare``, in WAL."""
    health = backend.check(f"sqlite:///{db}")
    return health.ok and health.revision == MLFLOW_HEAD and health.journal_mode == "wal"


def test_the_first_new_home_migrates_and_keeps_its_empty_store(
    tmp_path: Path, cache: Path, kept: Path
) -> None:
    """The first new home is ``migrated``'s, migrated with an empty cache folder once for
    this file; ``kept`` gives this test a copy of that home and of the cache it wrote."""
    from importlib.metadata import version

    from mlflow.store.db.base_sql_model import Base

    db = tmp_path / "first" / "mlflow.db"
    assert at_head(db)
    assert kept == cache / f"mlflow-{version('mlflow')}-{MLFLOW_HEAD}.db"
    assert sorted(p.name for p in cache.iterdir()) == [kept.name]  # no journal, no temp file
    assert seed.usable(kept)
    assert rows(kept, "PRAGMA journal_mode") == [("delete",)]  # one self-contained file
    # the constants are what MLflow's migrations make: every table, trigger and row
    assert named(db, "table") == seed.HEAD_TABLES >= set(Base.metadata.tables)
    assert named(db, "trigger") == seed.HEAD_TRIGGERS
    for table in sorted(seed.HEAD_TABLES):
        assert rows(db, f'SELECT * FROM "{table}"') == seed.HEAD_ROWS.get(table, []), table


def test_the_next_new_homes_are_copied_from_the_cache(
    tmp_path: Path, kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stamp(kept)
    for name in ("second", "third"):
        db = new_home(tmp_path, name, monkeypatch)
        assert stamp(kept) == before  # read, not written again: no migration ran
        assert at_head(db)
        assert backend._marked(db)  # the schema marker of prepare's check, as after a migration
        assert rows(db, "SELECT version_num FROM alembic_version") == [(MLFLOW_HEAD,)]
    assert seed.usable(kept)


def test_a_copied_home_is_marked_as_a_migrated_one_is(
    tmp_path: Path, kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy, checked by ``restore``, is switched to WAL and marked with sqlite3 alone:
    its marker says what the full check's marker says of a migrated home."""
    import json

    copied = new_home(tmp_path, "copied", monkeypatch)
    migrated = tmp_path / "first" / "mlflow.db"
    marker = backend._marker
    assert json.loads(marker(copied).read_text()) == json.loads(marker(migrated).read_text())
    assert rows(copied, "PRAGMA journal_mode") == [("wal",)]
    assert at_head(copied)


def models_in(home: Path, cache: Path) -> None:
    """``keizoku models`` in a new home: exit 0, the empty registry, nothing on stderr."""
    env = {**os.environ, "KEIZOKU_HOME": str(home), "KEIZOKU_CACHE_DIR": str(cache)}
    done = subprocess.run([KEIZOKU_EXE, "models"], cwd=home.parent, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "No registered models yet" in done.stdout


def test_the_executable_fills_the_cache_once_and_then_copies_it(
    tmp_path: Path, cache: Path
) -> None:
    models_in(tmp_path / "one", cache)
    kept = seed.cache_path()
    before = stamp(kept)
    models_in(tmp_path / "two", cache)
    assert stamp(kept) == before
    assert at_head(tmp_path / "two" / "mlflow.db")


def register_stand_in(project: str) -> int:
    """One run and one registered version, through keizoku's own path (a tiny stand-in)."""
    from keizoku.registry.tracking import TrainingRun

    with TrainingRun(project) as run:
        run.log_metrics({"cv_score": 0.5})
        return run.register({"stand-in": True}, {}, {})  # type: ignore[arg-type]


def test_a_copied_home_is_a_registry_of_its_own(
    tmp_path: Path, kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stamp(kept)
    one = new_home(tmp_path, "one", monkeypatch)
    assert register_stand_in("alpha") == 1
    assert models.list_models() == ["alpha"]
    two = new_home(tmp_path, "two", monkeypatch)
    assert models.list_models() == []  # nothing of home one
    assert register_stand_in("beta") == 1  # its own numbering
    assert models.list_models() == ["beta"]
    assert stamp(kept) == before and seed.usable(kept)  # the cache holds neither
    for db, name in ((one, "alpha"), (two, "beta")):
        assert rows(db, "SELECT name FROM registered_models") == [(name,)]
        assert rows(db, "SELECT name FROM experiments WHERE name != 'Default'") == [(name,)]
        assert len(rows(db, "SELECT run_uuid FROM runs")) == 1
    assert rows(kept, "SELECT count(*) FROM registered_models") == [(0,)]
    assert rows(kept, "SELECT count(*) FROM runs") == [(0,)]


def write_sql(statement: str) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(statement)
            conn.commit()

    return tamper


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def empty(path: Path) -> None:
    path.write_bytes(b"")


TAMPERING: dict[str, Callable[[Path], None]] = {
    "a planted model": write_sql("INSERT INTO registered_models (name) VALUES ('planted')"),
    "a second workspace": write_sql("INSERT INTO workspaces (name) VALUES ('planted')"),
    "another revision": write_sql("UPDATE alembic_version SET version_num = '0584bdc529eb'"),
    "two revisions": write_sql("INSERT INTO alembic_version VALUES ('planted')"),
    "a leftover temporary table": write_sql(
        "CREATE TABLE _alembic_tmp_model_versions (name VARCHAR(256))"
    ),
    "a dropped table": write_sql("DROP TABLE model_version_tags"),
    "a planted trigger": write_sql(
        "CREATE TRIGGER planted AFTER INSERT ON registered_models "
        "BEGIN DELETE FROM registered_models; END"
    ),
    "garbage bytes": garbage,
    "half a file": truncate,
    "an empty file": empty,
}


@pytest.mark.parametrize("damage", sorted(TAMPERING))
def test_a_tampered_cache_is_never_copied_and_is_replaced(
    damage: str, tmp_path: Path, kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TAMPERING[damage](kept)
    assert not seed.usable(kept)
    tampered = stamp(kept)
    db = new_home(tmp_path, "next", monkeypatch)
    assert at_head(db)  # migrated: none of the damage, no ConflictError
    assert rows(db, "SELECT name FROM registered_models") == []
    assert rows(db, "SELECT name FROM workspaces") == [("default",)]
    assert rows(db, "SELECT name FROM sqlite_master WHERE name LIKE '%planted%'") == []
    assert stamp(kept) != tampered and seed.usable(kept)  # replaced by the migrated store
    before = stamp(kept)
    assert at_head(new_home(tmp_path, "after", monkeypatch))
    assert stamp(kept) == before  # and copied again


def test_a_missing_or_foreign_file_is_not_usable(tmp_path: Path) -> None:
    assert not seed.usable(tmp_path / "absent.db")
    assert not seed.usable(tmp_path)  # a folder
    plain = tmp_path / "plain.db"
    write_sql("CREATE TABLE t (x)")(plain)
    assert not seed.usable(plain)


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a folder\n")
    return tmp_path / "a-file" / "cache"


def cache_file_is_a_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    (folder / f"mlflow-{backend._mlflow_version()}-{MLFLOW_HEAD}.db").mkdir(parents=True)
    return folder


def read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into a folder whose mode forbids it")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    return folder


UNWRITABLE: dict[str, Callable[[Path], Path]] = {
    "under a file": under_a_file,
    "the cache file is a folder": cache_file_is_a_folder,
    "a read-only folder": read_only_folder,
}


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


@pytest.mark.parametrize("where", sorted(UNWRITABLE))
def test_an_unwritable_cache_only_costs_the_migration(where: str, tmp_path: Path) -> None:
    folder = UNWRITABLE[where](tmp_path)
    before = listing(folder)
    for name in ("one", "two"):  # each migrates; the command neither fails nor says a word
        models_in(tmp_path / name, folder)
        assert at_head(tmp_path / name / "mlflow.db")
        # built beside the store and renamed into place: nothing of it is left
        assert not [p.name for p in (tmp_path / name).iterdir() if ".tmp-" in p.name]
    assert listing(folder) == before  # no cache, no temporary file left behind


def building(home: Path) -> list[str]:
    """What a migration builds beside the store (``backend._migrate_new``)."""
    return sorted(p.name for p in home.glob(".mlflow.db.tmp-*")) if home.is_dir() else []


def test_a_command_stopped_while_it_migrates_leaves_no_store(tmp_path: Path) -> None:
    """The store is built beside its path and renamed into place: SIGTERM during a new
    home's migration leaves no half-migrated store, and the next command migrates."""
    import signal
    import time

    folder = under_a_file(tmp_path)  # no cache: every new home migrates
    for attempt in range(3):  # a loaded machine may finish one before it is seen building
        home = tmp_path / f"home-{attempt}"
        env = {**os.environ, "KEIZOKU_HOME": str(home), "KEIZOKU_CACHE_DIR": str(folder)}
        proc = subprocess.Popen([KEIZOKU_EXE, "models"], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 300
        while proc.poll() is None and not building(home) and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None and building(home):
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
            break
        proc.communicate(timeout=120)
    else:
        pytest.fail("each migration ended before it was seen building")
    assert proc.returncode == 143, err  # keizoku's exit for SIGTERM
    assert not (home / "mlflow.db").exists()  # nothing half-migrated in its place
    models_in(home, folder)  # the next command migrates, without a word
    assert at_head(home / "mlflow.db") and building(home) == []


def test_the_cache_folder_follows_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEIZOKU_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert seed.cache_dir() == tmp_path / "user" / ".cache" / "keizoku"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert seed.cache_dir() == tmp_path / "xdg" / "keizoku"
    monkeypatch.setenv("KEIZOKU_CACHE_DIR", str(tmp_path / "own"))
    assert seed.cache_dir() == tmp_path / "own"
    assert seed.cache_path().parent == tmp_path / "own"
