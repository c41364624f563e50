"""A real PostgreSQL server for the store tests, started from the system's binaries.

``postgres`` (session scope: one server per test process) runs ``initdb`` and ``pg_ctl``
in a temporary folder on a free loopback port, trusting local connections, as the
``postgres`` user when the tests run as root (``initdb`` refuses root). Binaries are
taken from ``PATH`` or from Debian's ``/usr/lib/postgresql/<version>/bin`` (where the
``postgresql`` package puts them; ``.ci/run`` installs it when absent). ``database()``
creates a fresh database and returns its ``postgresql://`` URL.

Import the fixture into a test module: ``from pgsupport import postgres  # noqa: F401``.
``trained_penguins`` gives a test a store with penguins trained, from one training per run.
Without the binaries or the ``psycopg`` driver the cases that need it skip, saying which.
"""

from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, REPO, CliResult, built_once, free_port, relocated_copy

__all__ = ["PENGUINS", "Postgres", "pg_bin", "postgres", "trained_penguins", "why_no_postgres"]


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


@dataclass
class Postgres:
    """A throwaway PostgreSQL server; ``database()`` makes a fresh database."""

    port: int
    user: str = "keizoku"
    counter: itertools.count[int] = field(default_factory=itertools.count)
    template: str | None = None  # a database keizoku migrated (``database(migrated=True)``)

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def database(self, *, migrated: bool = False) -> str:
        """A new database: its ``postgresql://`` URL. Empty, or with ``migrated`` a copy
        (``CREATE DATABASE … TEMPLATE``) of one that keizoku's own first use gave MLflow's
        schema, made once per server: for a test whose subject is not creating the schema
        (migrating a new database costs ~0.6 s of the test's CPU, copying one ~0.01 s)."""
        import psycopg

        source = f' TEMPLATE "{self._migrated()}"' if migrated else ""
        name = f"kz{os.getpid()}_{next(self.counter)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{source}')
        return self.url(name)

    def _migrated(self) -> str:
        """The template's name: a new database migrated by ``registry.backend.prepare`` (it
        closes its connections after, as a copy's source must have none)."""
        if self.template is None:
            from keizoku.registry.backend import prepare

            url = self.database()
            prepare(url.replace("postgresql:", "postgresql+psycopg:"))
            self.template = url.rsplit("/", 1)[1]
        return self.template

    def execute(self, url: str, sql: str) -> list[tuple[object, ...]]:
        """Run ``sql`` in the database at ``url`` (as an outsider would)."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    assert initdb and pg_ctl
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="keizoku-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    try:
        pg(initdb, "-D", str(data), "-U", "keizoku", "--auth=trust", "-E", "UTF8")
        pg(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o", opts, "start")
        yield Postgres(port)
    finally:
        if (data / "postmaster.pid").exists():
            pg(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


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
