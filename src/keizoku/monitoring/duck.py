"""One in-memory DuckDB database per process; every query takes its own cursor.

Opening a DuckDB database costs 13-16 ms of CPU (catalog, settings, thread pool); a
cursor on an open one about 10 µs. The log readers (the feedback check of every
``POST /v1/models/{name}/feedback``, ``monitor``, the loop's counts, compaction, the
bucket folding) each take a cursor from :func:`duckdb_cursor` instead of connecting.

What a use may and may not change:

* the settings are the database's, fixed here when it is opened (``threads`` is global
  in DuckDB: a ``SET`` on any cursor changes every cursor's), so no caller sets one;
* a table a caller registers (``cursor.register``) lives in that cursor only and goes
  when the cursor is closed (``with duckdb_cursor() as con:``) or freed;
* no file contents are cached between uses (``enable_external_file_cache`` off): every
  query reads the log as it is on disk now.

Threads: each thread takes its own cursor (a cursor is not shared between threads);
opening the database is guarded by a lock.

Fork: a child must neither use nor free its parent's database. Freeing it joins the
parent's worker threads, which do not exist in the child: the child hangs (or crashes)
at exit. After a fork the child forgets the parent's database and keeps one reference to
it that is never released, so it is never freed; the child opens its own on first use.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

__all__ = ["duckdb_cursor"]

# threads: as `keizoku monitor` and compaction always ran; a serving host keeps its cores
SETTINGS = {"threads": 2, "enable_external_file_cache": False}

_lock = threading.Lock()
_database: list[DuckDBPyConnection] = []  # this process's database, once opened


def duckdb_cursor() -> DuckDBPyConnection:
    """A new cursor on this process's in-memory database (opened at the first call).

    Close it with ``with duckdb_cursor() as con:``; one not closed closes when freed.
    """
    with _lock:
        if not _database:
            import duckdb

            _database.append(duckdb.connect(config=dict(SETTINGS)))
        return _database[0].cursor()


def _forget_in_child() -> None:
    """In a forked child: drop the parent's database without ever freeing it."""
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _database:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(_database[0]))
        _database.clear()


os.register_at_fork(after_in_child=_forget_in_child)
