"""The process's one DuckDB database: a cursor per use, safe across threads and forks."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd

import keizoku
from keizoku.monitoring.duck import duckdb_cursor

# The parent queries (its database's worker threads run), then forks; the child queries
# through its own database and ends as any program does (destructors run at exit). With
# the parent's database still referenced in the child, that exit hangs (or crashes).
FORK_AT_EXIT = """
import os, sys, time
from keizoku.monitoring import duck
from keizoku.monitoring.duck import duckdb_cursor

with duckdb_cursor() as con:
    con.execute("CREATE TABLE parent_only AS SELECT 1 AS x")
    print("parent", con.execute("SELECT sum(range) FROM range(1000000)").fetchone()[0])
if {held}:
    duck._lock.acquire()  # as if another thread held it at the fork
pid = os.fork()
if pid == 0:
    with duckdb_cursor() as con:
        tables = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]
        total = con.execute("SELECT sum(range) FROM range(1000000)").fetchone()[0]
    print("child", tables, total, flush=True)
    sys.exit(0)
for _ in range(600):  # a hang detector, not a timing: the child normally ends at once
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child exit", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print("child hung at exit")
"""


def _fork_run(held: bool) -> list[str]:
    code = textwrap.dedent(FORK_AT_EXIT).format(held=held)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_a_child_forked_after_a_query_uses_its_own_database_and_exits() -> None:
    assert _fork_run(held=False) == [
        "parent 499999500000",
        "child 0 499999500000",  # the parent's table is not in the child's database
        "child exit 0",
    ]


def test_a_child_forked_while_the_lock_was_held_still_opens_its_database() -> None:
    assert _fork_run(held=True)[1:] == ["child 0 499999500000", "child exit 0"]


def test_threads_each_take_a_cursor_and_see_only_what_they_registered() -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(20):
                with duckdb_cursor() as con:
                    con.register("seg", pd.DataFrame({"v": [k] * (i + 1)}))
                    got = con.execute("SELECT sum(v), count(*) FROM seg").fetchone()
                    assert got == (k * (i + 1), i + 1), (k, i, got)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with duckdb_cursor() as con:  # a closed cursor's registration went with it
        assert con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name='seg'"
        ).fetchone() == (0,)


def test_the_settings_are_the_databases_and_no_use_sets_one() -> None:
    sql = (
        "SELECT current_setting('threads'), current_setting('enable_external_file_cache'), "
        "current_setting('cache_local_files')"
    )
    with duckdb_cursor() as con:
        assert con.execute(sql).fetchone() == (2, False, False)
    src = Path(keizoku.__file__).parent
    # every log reader takes a cursor; only data/ingest.py opens a user's database file
    connects = sorted(
        str(f.relative_to(src)) for f in src.rglob("*.py") if "duckdb.connect(" in f.read_text()
    )
    assert connects == ["data/ingest.py", "monitoring/duck.py"]
    users = [f for f in src.rglob("*.py") if "duckdb_cursor" in f.read_text()]
    assert len(users) >= 8
    for f in users:  # a SET on a cursor would change the database for every later use
        assert not re.search(r"execute\(\s*f?[\"']\s*(SET|RESET)\b", f.read_text(), re.I), f
