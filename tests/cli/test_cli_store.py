"""A registry store that survives concurrency and damage (issue 10, item 9).

Commands started at once on a fresh ``KEIZOKU_HOME`` used to run MLflow's schema
migration side by side and leave ``_alembic_tmp_*`` tables behind, after which every
command failed for good. Now the schema is created once, under a lock; a damaged
store is refused with the command that repairs it, and ``keizoku doctor --repair``
repairs it or leaves it exactly as it was.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from keizoku.errors import ExitCode
from kzsupport import KEIZOKU_EXE, REAL_KEIZOKU_EXE, REPO, CliResult

PENGUINS = REPO / "examples" / "data" / "penguins.csv"
# The revision before MLflow's migration that batch-alters model_versions (workspaces):
# the state the concurrent crash of issue 10 left, with its temporary table.
BEFORE_WORKSPACES = "c8d9e0f1a2b3"
# A short deterministic search (not a wall-clock budget): the race is on the store.
# Any registered model will do (the race is on the store): the cheapest search
CHEAPEST = ("--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(home)}


def start(
    home: Path, *args: str, cwd: Path | None = None, exe: str = KEIZOKU_EXE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [exe, *args], cwd=cwd or home.parent, env=_env(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> CliResult:
    out, err = proc.communicate(timeout=timeout)
    return CliResult(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def run(home: Path, *args: str, cwd: Path | None = None) -> CliResult:
    return finish(start(home, *args, cwd=cwd))


def sql(db: Path, statement: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        rows = list(conn.execute(statement))
        conn.commit()
        return rows


def tables(db: Path) -> set[str]:
    return {str(r[0]) for r in sql(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def revision(db: Path) -> str:
    return str(sql(db, "SELECT version_num FROM alembic_version")[0][0])


def head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def healthy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store created once by keizoku, copied into each test's home (migrations are slow)."""
    home = tmp_path_factory.mktemp("template") / ".keizoku"
    assert run(home, "models").code == 0
    return home / "mlflow.db"


def copy_store(template: Path, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    db = home / "mlflow.db"
    with closing(sqlite3.connect(template)) as src, closing(sqlite3.connect(db)) as dst:
        src.backup(dst)
    return db


def test_commands_started_at_once_on_a_fresh_home_all_succeed(keizoku_home: Path) -> None:
    procs = [start(keizoku_home, "models") for _ in range(4)]
    results = [finish(p) for p in procs]
    for r in results:
        assert r.code == 0, r.text
        assert "No registered models yet" in r.out
    db = keizoku_home / "mlflow.db"
    assert revision(db) == head()
    assert not {t for t in tables(db) if t.startswith("_alembic_tmp_")}
    assert sql(db, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.slow
def test_two_trains_at_once_on_a_fresh_home_both_register(
    keizoku_home: Path, tmp_path: Path
) -> None:
    # Two projects share one home: the race is on the store, not on one model's aliases.
    roots = []
    for name in ("penguins_a", "penguins_b"):
        root = tmp_path / name
        root.mkdir()
        init = run(keizoku_home, "init", str(PENGUINS), "-t", "species", "--name", name, cwd=root)
        assert init.code == 0, init.text
        roots.append(root)
    assert not (keizoku_home / "mlflow.db").exists()  # init does not touch the store
    procs = [start(keizoku_home, "train", *CHEAPEST, cwd=root) for root in roots]
    for proc in procs:
        result = finish(proc)
        assert result.code == 0, result.text
        assert "Traceback" not in result.err
    models = run(keizoku_home, "models")
    assert models.code == 0, models.text
    assert "penguins_a" in models.out and "penguins_b" in models.out


def test_a_command_waits_for_the_store_lock(keizoku_home: Path, healthy_store: Path) -> None:
    db = copy_store(healthy_store, keizoku_home)
    with open(keizoku_home / "mlflow.db.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = start(keizoku_home, "models", exe=REAL_KEIZOKU_EXE)  # its own pid: /proc/PID/fd
        _wait_until_it_opens(proc, keizoku_home / "mlflow.db.lock")
        _wait_until_refused(proc, times=10)  # it has reached the lock: it must still be waiting
        assert proc.poll() is None, finish(proc).text
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    result = finish(proc)
    assert result.code == 0, result.text
    assert revision(db) == head()


def _wait_until_it_opens(proc: subprocess.Popen[str], path: Path, timeout: float = 120) -> None:
    """Until ``proc`` holds ``path`` open (Linux /proc): it has imported and reached the lock."""
    fds = Path(f"/proc/{proc.pid}/fd")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc).text
        try:
            if any(os.readlink(fd) == str(path.resolve()) for fd in fds.iterdir()):
                return
        except OSError:  # an fd closed while we looked
            pass
        time.sleep(0.1)
    raise AssertionError(f"keizoku did not open {path} within {timeout:g} s")


def _sleeps(pid: int) -> int:
    """How many times ``pid`` has given up the processor of its own accord (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0])


def _wait_until_refused(proc: subprocess.Popen[str], times: int, timeout: float = 120) -> None:
    """Until ``proc``, which holds the lock file open, has slept ``times`` more times: a
    refused ``flock`` attempt sleeps 0.05 s before the next (``keizoku.home.file_lock``),
    so it has been refused the lock that often and kept waiting (a fixed 2 s sleep was
    the wait here: ~40 refusals)."""
    start = _sleeps(proc.pid)
    deadline = time.monotonic() + timeout
    while _sleeps(proc.pid) < start + times:
        assert proc.poll() is None, finish(proc).text
        assert time.monotonic() < deadline, f"keizoku slept fewer than {times} times"
        time.sleep(0.05)


def _interrupted_migration(home: Path) -> Path:
    """A store as the concurrent crash left it: half-migrated, with a temporary table."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    home.mkdir(parents=True, exist_ok=True)
    db = home / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, BEFORE_WORKSPACES)
    engine.dispose()
    sql(db, "CREATE TABLE _alembic_tmp_model_versions AS SELECT * FROM model_versions")
    return db


def test_an_interrupted_migration_is_reported_then_repaired(keizoku_home: Path) -> None:
    db = _interrupted_migration(keizoku_home)

    refused = run(keizoku_home, "models")
    assert refused.code == ExitCode.CONFLICT == 8, refused.text
    assert "Traceback" not in refused.err
    (line,) = lines(refused.err)
    assert line.startswith(f"error: The registry store sqlite:///{db} is damaged: a table ")
    assert "'_alembic_tmp_model_versions' left by an interrupted schema migration" in line
    assert f"schema revision {BEFORE_WORKSPACES} is not the head {head()}" in line
    assert line.endswith("Repair it with: keizoku doctor --repair (it backs the store up first)")
    assert revision(db) == BEFORE_WORKSPACES  # refused means untouched

    assert run(keizoku_home, "doctor").code == 8

    repaired = run(keizoku_home, "doctor", "--repair")
    assert repaired.code == 0, repaired.text
    assert "repaired: a table '_alembic_tmp_model_versions'" in repaired.out
    backups = list(keizoku_home.glob("mlflow.db.bak-*"))
    assert len(backups) == 1
    assert revision(backups[0]) == BEFORE_WORKSPACES
    assert revision(db) == head()
    assert "_alembic_tmp_model_versions" not in tables(db)

    assert run(keizoku_home, "doctor").code == 0
    models = run(keizoku_home, "models")
    assert models.code == 0, models.text
    assert "No registered models yet" in models.out


def test_a_repair_that_fails_leaves_the_store_as_it_was(
    keizoku_home: Path, healthy_store: Path
) -> None:
    db = copy_store(healthy_store, keizoku_home)
    # Claim the last migration has not run although its tables exist: re-running it fails.
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    previous = ScriptDirectory.from_config(_get_alembic_config("")).get_revision(head())
    sql(db, f"UPDATE alembic_version SET version_num = '{previous.down_revision}'")
    before = tables(db)

    result = run(keizoku_home, "doctor", "--repair")
    assert result.code == 8, result.text
    assert "Traceback" not in result.err
    (line,) = lines(result.err)
    assert line.startswith(f"error: Could not repair the registry store sqlite:///{db}: ")
    assert "The store is back as it was (backup " in line
    assert revision(db) == previous.down_revision
    assert tables(db) == before


def test_a_temporary_table_without_its_original_is_not_guessed_at(
    keizoku_home: Path, healthy_store: Path
) -> None:
    db = copy_store(healthy_store, keizoku_home)
    sql(db, "CREATE TABLE _alembic_tmp_vanished (id INTEGER)")

    result = run(keizoku_home, "doctor", "--repair")
    assert result.code == 8, result.text
    (line,) = lines(result.err)
    assert "has _alembic_tmp_vanished but not the original table(s)" in line
    assert "restore a backup of the store" in line
    assert not list(keizoku_home.glob("mlflow.db.bak-*"))
    assert "_alembic_tmp_vanished" in tables(db)


def test_a_checked_store_is_checked_again_with_sqlite3_only(
    tmp_path: Path, healthy_store: Path
) -> None:
    """The full schema check runs once per store; later processes verify its record."""
    import json
    import re
    import sys

    from keizoku.registry import backend

    marker = healthy_store.with_name("mlflow.db.schema")
    note = json.loads(marker.read_text())  # written by the check that created the store
    assert note["revision"] == head() and {"model_versions", "alembic_version"} <= set(
        note["tables"]
    )
    probe = (
        "import sys; from keizoku.registry import backend; backend.prepare(sys.argv[1]); "
        "print(sorted({'sqlalchemy', 'alembic', 'mlflow'} & set(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    uri = f"sqlite:///{healthy_store}"
    done = subprocess.run([sys.executable, "-c", probe, uri], env=env, capture_output=True)
    assert done.returncode == 0 and done.stdout.decode().strip() == "[]", done

    damages = {  # each is refused as the full check refuses it, marker or not
        "CREATE TABLE _alembic_tmp_model_versions (name VARCHAR(256))": "left by an interrupted",
        "UPDATE alembic_version SET version_num = 'abc'": "unknown to the installed MLflow",
        "DROP TABLE model_version_tags": "missing table(s) model_version_tags",
    }
    for i, (damage, message) in enumerate(damages.items()):
        db = copy_store(healthy_store, tmp_path / str(i))
        marker_copy = db.with_name(marker.name)
        marker_copy.write_text(marker.read_text())
        sql(db, damage)
        with pytest.raises(backend.ConflictError, match=re.escape(message)):
            backend.prepare(f"sqlite:///{db}")
        assert marker_copy.read_text() == marker.read_text()  # not re-recorded

    # a record from another MLflow version is not trusted: the full check runs and rewrites it
    db = copy_store(healthy_store, tmp_path / "other-mlflow")
    sql(db, "PRAGMA journal_mode=WAL")
    db.with_name(marker.name).write_text(json.dumps({**note, "mlflow": "0.0.1"}))
    done = subprocess.run([sys.executable, "-c", probe, f"sqlite:///{db}"], env=env,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0 and "sqlalchemy" in done.stdout.decode(), done
    assert json.loads(db.with_name(marker.name).read_text()) == note
