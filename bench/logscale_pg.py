"""The shared log as Parquet segments (DuckDB) vs a PostgreSQL table (decision 25).

    python bench/logscale_pg.py [ROWS]          # default 1,000,000; needs initdb/pg_ctl

ROWS predictions arrive as 116-row flushes (1 s flushes at 10M rows a day). PostgreSQL: one
``COPY`` per flush into one table (a throwaway server, fsync on; as root it runs as the
``postgres`` user). Parquet: one ``write_segment`` per flush. Then the same drift-style
aggregate (per hour: count, mean and sd of two numbers, two level counts) on the table, on
the segments and on the segments compacted into one file; the second of two runs is timed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
PER = 116
QUERY = (
    "SELECT floor(ts/3600) AS b, count(*), avg(f_a), stddev(f_a), avg(f_b), "
    "count(*) FILTER (WHERE f_c='x'), count(*) FILTER (WHERE prediction='A') FROM {src} "
    "WHERE NOT shadow GROUP BY 1"
)


def _timed(f: Callable[[], Any]) -> float:
    f()
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    import psycopg

    from keizoku.monitoring.log import write_segment

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(0)
    table = pa.table({
        "request_id": [f"r{i}" for i in range(n)],
        "ts": time.time() - 86400 + np.arange(n) * (86400 / n),
        "version": np.ones(n, dtype=np.int64), "shadow": np.zeros(n, dtype=bool),
        "latency_ms": rng.uniform(0.5, 3, n), "prediction": rng.choice(["A", "B", "C"], n),
        "score": rng.uniform(0, 1, n), "f_a": rng.normal(0, 1, n), "f_b": rng.normal(5, 2, n),
        "f_c": rng.choice(["x", "y", "z"], n),
    })  # fmt: skip
    pgdir, segdir = Path(tempfile.mkdtemp(prefix="pg-")), Path(tempfile.mkdtemp(prefix="seg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        user = pwd.getpwnam("postgres")
        os.chown(pgdir, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = 55433
    opts = f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1"
    run = [*as_user, "pg_ctl", "-D", f"{pgdir}/data"]
    subprocess.run([*as_user, "initdb", "-D", f"{pgdir}/data", "-U", "k", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*run, "-o", opts, "-l", f"{pgdir}/log", "-w", "start"], check=True,
                   capture_output=True)  # fmt: skip
    try:
        con = psycopg.connect(f"host=127.0.0.1 port={port} user=k dbname=postgres",
                              autocommit=True)  # fmt: skip
        con.execute("CREATE TABLE log (request_id text, ts double precision, version bigint, "
                    "shadow boolean, latency_ms double precision, prediction text, "
                    "score double precision, f_a double precision, f_b double precision, "
                    "f_c text)")  # fmt: skip
        flushes = n // PER
        t0 = time.perf_counter()
        for s in range(flushes):
            part = table.slice(s * PER, PER)
            with con.cursor().copy("COPY log FROM STDIN") as cp:
                for row in zip(*[part.column(c).to_pylist() for c in part.column_names],
                               strict=True):  # fmt: skip
                    cp.write_row(row)
        pg_ingest = time.perf_counter() - t0
        folder = segdir / "seg"
        t0 = time.perf_counter()
        for s in range(flushes):
            write_segment(folder, table.slice(s * PER, PER))
        pq_ingest = time.perf_counter() - t0
        con.execute("VACUUM ANALYZE log")
        dcon = duckdb.connect()
        dcon.execute("SET threads TO 2")
        segments = f"read_parquet('{folder}/*.parquet', union_by_name=true)"
        one = segdir / "one.parquet"
        dcon.execute(f"COPY (SELECT * FROM {segments}) TO '{one}' (FORMAT parquet)")
        out = {
            "rows": n, "flushes": flushes, "pg_ingest_s": pg_ingest,
            "parquet_ingest_s": pq_ingest,
            "pg_query_s": _timed(lambda: con.execute(QUERY.format(src="log")).fetchall()),
            "parquet_segments_query_s": _timed(
                lambda: dcon.execute(QUERY.format(src=segments)).fetchall()),
            "parquet_compacted_query_s": _timed(
                lambda: dcon.execute(QUERY.format(src=f"read_parquet('{one}')")).fetchall()),
            "pg_bytes": con.execute("SELECT pg_total_relation_size('log')").fetchone()[0],  # type: ignore[index]
            "segments_bytes": sum(p.stat().st_size for p in folder.glob("*.parquet")),
            "compacted_bytes": one.stat().st_size, "load": os.getloadavg()[0],
        }  # fmt: skip
        print(json.dumps(out, indent=1))
    finally:
        subprocess.run([*run, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(segdir, ignore_errors=True)


if __name__ == "__main__":
    main()
