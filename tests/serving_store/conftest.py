"""Fixtures for servers whose store is empty, or goes away and comes back.

``own_postgres`` is a PostgreSQL server of this folder's own (module scope), which a test
may stop and start again: the session's shared one (``pgsupport.postgres``) must keep
running for every other test of the process.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzsupport import free_port
from pgsupport import pg_bin, why_no_postgres
from store_outage_support import OwnPostgres


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    initdb = pg_bin("initdb")
    assert initdb
    root = Path(tempfile.mkdtemp(prefix="keizoku-own-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pg = OwnPostgres(free_port(), root=root, as_user=as_user)
    try:
        subprocess.run([*as_user, initdb, "-D", str(root / "data"), "-U", "keizoku",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        pg.start()
        yield pg
    finally:
        if (root / "data" / "postmaster.pid").exists():
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
