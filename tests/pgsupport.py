"""A real PostgreSQL server for the store tests, started from the system's binaries.

``postgres`` (session scope) is the run's one server, shared by every xdist worker and
every module that imports the fixture (each such module has a fixture of its own, which
once meant a server of its own): the first process to ask starts it
(``kzsupport.built_once``), each test gets databases of its own (``database()``, named
after the worker's pid), and the process that started the run stops it at its end
(``stop_run_server``, from ``tests/conftest.py``). Every server here (that one, and the
ones a test may stop and start: ``store_outage_support``) starts from a copy of one
``initdb`` per run (``data_folder``), on a free loopback port, trusting local connections,
as the ``postgres`` user when the tests run as root (``initdb`` refuses root), without
fsync (``SETTINGS``). Binaries are taken from ``PATH`` or from Debian's
``/usr/lib/postgresql/<version>/bin`` (where the ``postgresql`` package puts them;
``.ci/run`` installs it when absent).

Import the fixture into a test module: ``from pgsupport import postgres  # noqa: F401``.
``migrated_database`` gives a test a database already at MLflow's head (migrated once per
run); ``trained_penguins`` a store with penguins trained, from one training per run.
Without the binaries or the ``psycopg`` driver the cases that need it skip, saying which.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, REPO, CliResult, built_once, free_port, relocated_copy

__all__ = [
    "PENGUINS",
    "Postgres",
    "data_folder",
    "migrated_database",
    "pg_bin",
    "postgres",
    "server_folder",
    "start_server",
    "stop_run_server",
    "stop_server",
    "trained_penguins",
    "why_no_postgres",
]


def pg_bin(exe: str) -> str | None:
    """``exe`` on PATH, else the newest Debian ``/usr/lib/postgresql/*/bin/exe``."""
    found = shutil.which(exe)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{exe}")
    return max(candidates, key=lambda p: int(Path(p).parts[-3]), default=None)


def why_no_postgres() -> str | None:
    for exe in ("initdb", "pg_ctl"):
        if pg_bin(exe) is None:
            return f"no PostgreSQL server binary '{exe}' (Debian: apt-get install postgresql)"
    if importlib.util.find_spec("psycopg") is None:
        return "no PostgreSQL driver: pip install 'keizoku[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and no 'postgres' user to run the server as"
    return None


# A database's name: the worker's pid and this process-wide count (each module that imports
# the fixture has an instance of it, and every instance names databases on the one server)
_DATABASES = itertools.count()


@dataclass
class Postgres:
    """A throwaway PostgreSQL server; ``database()`` makes a fresh database."""

    port: int
    user: str = "keizoku"

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def database(self, copy_of: str | None = None) -> str:
        """A new database, empty or a copy of the database named ``copy_of`` (no session may
        be connected to it): its ``postgresql://`` URL."""
        import psycopg

        name = f"kz{os.getpid()}_{next(_DATABASES)}"
        template = f' TEMPLATE "{copy_of}"' if copy_of else ""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def execute(self, url: str, sql: str) -> list[tuple[object, ...]]:
        """Run ``sql`` in the database at ``url`` (as an outsider would)."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []


# Throwaway data: no fsync (synchronous_commit=off and full_page_writes=off on top made no
# difference to the server's CPU over the store tests, s15). One server for both workers:
# their store tests held up to 54 sessions at once (s15), too near the default 100.
SETTINGS = ("fsync=off", "max_connections=300")
RUN_SERVER = "postgresql"  # the run's server: its kzsupport.built_once folder


def _as_postgres_user() -> list[str]:
    """The prefix that runs a server binary as ``postgres`` when the tests run as root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def server_folder(prefix: str) -> Path:
    """A new temporary folder the server's user owns (its data, socket and log go there)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def _server_options(port: int, root: Path) -> str:
    """``pg_ctl -o``: loopback only, the socket in ``root``, the settings for test data."""
    settings = " ".join(f"-c {s}" for s in SETTINGS)
    return f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {settings}"


def _initdb(folder: Path) -> None:
    """``folder/data``: a new cluster (user ``keizoku``, trust), initialised once per run."""
    initdb = pg_bin("initdb")
    assert initdb
    work = server_folder("keizoku-pg-initdb-")
    try:
        subprocess.run([*_as_postgres_user(), initdb, "-D", str(work / "data"), "-U", "keizoku",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        _copy_data(work / "data", folder / "data")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy_data(source: Path, dest: Path) -> None:
    """``cp -a``: the owner (``postgres``) and the 0700 modes PostgreSQL insists on."""
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True, capture_output=True,
                   timeout=120)  # fmt: skip


def data_folder(root: Path) -> Path:
    """``root/data``: a copy of the run's one ``initdb`` (a copy costs a fifth of one)."""
    _copy_data(built_once("postgresql-initdb", _initdb) / "data", root / "data")
    return root / "data"


def _pg_ctl(root: Path, *args: str) -> None:
    pg_ctl = pg_bin("pg_ctl")
    assert pg_ctl
    subprocess.run([*_as_postgres_user(), pg_ctl, "-D", str(root / "data"), *args], check=True,
                   capture_output=True, timeout=120)  # fmt: skip


def start_server(root: Path, port: int) -> None:
    """Start the server whose data is ``root/data`` on ``port``; return once it answers."""
    _pg_ctl(root, "-l", str(root / "server.log"), "-w", "-o", _server_options(port, root), "start")


def stop_server(root: Path, mode: str) -> None:
    """Stop the server of ``root/data`` if it runs (``mode``: ``pg_ctl -m``)."""
    if (root / "data" / "postmaster.pid").exists():
        _pg_ctl(root, "-m", mode, "-w", "stop")


def _start_run_server(folder: Path) -> None:
    """The run's server: its folder's path in ``folder/root`` (first, so that the run's end
    finds it whatever happens next), its port in ``folder/port`` once it answers."""
    root = server_folder("keizoku-pg-")
    (folder / "root").write_text(str(root))
    port = free_port()
    try:
        data_folder(root)
        start_server(root, port)
    except BaseException:  # built_once removes ``folder``: nothing would stop it then
        stop_server(root, "immediate")
        shutil.rmtree(root, ignore_errors=True)
        raise
    (folder / "port").write_text(str(port))


def stop_run_server(shared: Path) -> None:
    """Stop and remove the run's server, if a worker started one (``shared``: the run's
    ``kzsupport.built_once`` folder); the run's controlling process calls it at its end."""
    note = shared / RUN_SERVER / "root"
    if not note.is_file():
        return
    root = Path(note.read_text())
    try:
        stop_server(root, "immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """The run's PostgreSQL server (started by the first process that asks)."""
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    return Postgres(int((built_once(RUN_SERVER, _start_run_server) / "port").read_text()))


# ------------------------------------------------------------ the CLI on a store

# The stores' tests need registered versions, not a particular model: the cheapest search.
TRAIN = ("--budget", "5m", "--preset", "fast", "--family", "linear", "--max-trials", "1")


def keizoku(where: Path, store: str, *args: str, home: bool = True) -> CliResult:
    """``keizoku ARGS`` in project folder ``where`` (its own home, or none), on ``store``."""
    env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(where / ".keizoku"),
           "KEIZOKU_STORE": store}  # fmt: skip
    for name in (
        "KEIZOKU_TRACKING_URI",
        "KEIZOKU_ARTIFACT_ROOT",
        *([] if home else ["KEIZOKU_HOME"]),
    ):
        env.pop(name, None)
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([KEIZOKU_EXE, *args], cwd=where, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    return CliResult(done)


def migrated_database(pg: Postgres) -> str:
    """A new database as keizoku's first command leaves an empty one (MLflow's tables at the
    head, no model), for the tests whose subject is not that migration: a copy of one that
    ``keizoku models`` migrated once per run on ``pg`` (as a new home's SQLite store is a
    copy of one migrated store, ``keizoku.registry.seed``). Its URL."""
    folder = built_once(f"postgresql-migrated-{pg.port}", functools.partial(_migrate, pg))
    return pg.database(copy_of=(folder / "database").read_text())


def _migrate(pg: Postgres, folder: Path) -> None:
    """``folder/database``: the name of a database on ``pg`` that ``keizoku models`` found
    empty and migrated (its process has exited: nothing is connected to it)."""
    url = pg.database()
    done = keizoku(folder / "project", url, "models")
    assert done.code == 0 and "No registered models yet" in done.out, done.text
    (folder / "database").write_text(url.rpartition("/")[2])


# ------------------------------------------------ penguins trained once per run, restored

PENGUINS = REPO / "examples" / "data" / "penguins.csv"


def _pg(exe: str, *args: str) -> None:
    """Run PostgreSQL's client ``exe`` (``pg_dump``, ``psql``) of the server's version."""
    server = pg_bin("initdb")
    beside = Path(server).with_name(exe) if server else None
    path = str(beside) if beside and beside.exists() else pg_bin(exe)
    assert path, f"no PostgreSQL client '{exe}'"
    done = subprocess.run([path, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _train_embedded(project: Path) -> None:
    """penguins v1 trained in ``project``'s home (the embedded store)."""
    assert keizoku(project, "embedded", "init", str(PENGUINS), "-t", "species").code == 0
    trained = keizoku(project, "embedded", "train", *TRAIN)
    assert trained.code == 0, trained.text


def _train_postgres(store: str, folder: Path) -> None:
    """penguins trained twice in ``folder/project`` on the empty database ``store``, with a
    dump of it after each training (``v1.sql``, ``v2.sql``: v2 as its gates decided)."""
    project = folder / "project"
    assert keizoku(project, store, "init", str(PENGUINS), "-t", "species").code == 0
    for version in (1, 2):
        trained = keizoku(project, store, "train", *TRAIN)
        assert trained.code in ((0,) if version == 1 else (0, 6)), trained.text
        dump = folder / f"v{version}.sql"
        _pg("pg_dump", "--no-owner", "--no-privileges", "-f", str(dump), store)


def _sibling_database(store: str) -> str:
    """A new, empty database on the server of ``store``: its URL."""
    import psycopg

    server, _, name = store.rpartition("/")
    sibling = f"{name}_template"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{sibling}"')
    return f"{server}/{sibling}"


def trained_penguins(dest: Path, store: str, versions: int = 1) -> Path:
    """``dest``: a project folder with penguins trained ``versions`` times (v1 the champion;
    v2, when asked for, as its gates decided) on ``store``: "embedded" (in ``dest``'s home,
    v1 only), or an empty PostgreSQL database's URL, which gets the trained rows.

    The training runs once per test run (``kzsupport.built_once``); each caller gets a
    copy. A PostgreSQL copy's registry points at the template's artifacts: read them, never
    change them.
    """
    if store == "embedded":
        assert versions == 1, "the embedded template holds penguins v1 only"
        return relocated_copy(built_once("penguins-embedded", _train_embedded), dest)
    template = built_once(
        "penguins-postgresql", lambda folder: _train_postgres(_sibling_database(store), folder)
    )
    shutil.copytree(template / "project", dest, dirs_exist_ok=True)
    _pg("psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(template / f"v{versions}.sql"), store)
    return dest
