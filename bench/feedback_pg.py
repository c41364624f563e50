"""Feedback beside the predictions (Parquet, shared log root) vs a PostgreSQL table (0022).

    python bench/feedback_pg.py [PREDICTIONS] [LABELS]   # default 1,000,000 and 100,000

PREDICTIONS rows are the prediction log (10 compacted files). LABELS arrive as 1,000-label
batches (a feedback call each): Parquet writes one ``write_segment`` per batch, PostgreSQL
one ``COPY`` per batch into one table (a throwaway server, fsync on; as root it runs as
the ``postgres`` user). Then the join every performance reader runs (latest label per
request id, joined to the predictions): on the feedback segments, on them compacted into
one file, and with the labels read from the table into Arrow first (DuckDB cannot join a
PostgreSQL table without an extension that is downloaded at run time). The second of two
runs is timed.
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
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from logscale_pg import _timed  # bench/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
BATCH = 1000
JOIN = (
    "WITH l AS (SELECT request_id, arg_max(label, received_ts) AS label FROM {f} "
    "GROUP BY request_id) SELECT p.prediction = l.label AS hit, count(*) FROM {p} p "
    "JOIN l USING (request_id) GROUP BY 1"
)


def _server(root: Path, port: int) -> list[str]:
    """Start a throwaway PostgreSQL in ``root``; the ``pg_ctl`` command line to stop it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pgsupport import pg_bin

    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    assert initdb and pg_ctl, "no PostgreSQL binaries (apt-get install postgresql)"
    subprocess.run([*as_user, initdb, "-D", f"{root}/data", "-U", "k", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    ctl = [*as_user, pg_ctl, "-D", f"{root}/data"]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*ctl, "-o", opts, "-l", f"{root}/log", "-w", "start"], check=True,
                   capture_output=True)  # fmt: skip
    return ctl


def main() -> None:
    import psycopg

    from keizoku.monitoring.log import write_segment

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="fb-"))
    preds = pa.table({
        "request_id": [f"r{i}" for i in range(n)],
        "ts": np.arange(n, dtype=np.float64), "prediction": rng.choice(["A", "B", "C"], n),
    })  # fmt: skip
    (work / "p").mkdir()
    for k in range(10):
        write_segment(work / "p", preds.slice(k * (n // 10), n // 10), prefix="cmp")
    picked = rng.choice(n, m, replace=False)
    labels = pa.table({
        "request_id": [f"r{i}" for i in picked], "label": rng.choice(["A", "B", "C"], m),
        "received_ts": np.arange(m, dtype=np.float64),
    })  # fmt: skip
    pgdir = Path(tempfile.mkdtemp(prefix="pg-"))
    ctl = _server(pgdir, 55434)
    try:
        con = psycopg.connect("host=127.0.0.1 port=55434 user=k dbname=postgres",
                              autocommit=True)  # fmt: skip
        con.execute("CREATE TABLE feedback (request_id text, label text, "
                    "received_ts double precision)")  # fmt: skip
        t0 = time.perf_counter()
        for s in range(0, m, BATCH):
            part = labels.slice(s, BATCH)
            with con.cursor().copy("COPY feedback FROM STDIN") as cp:
                for row in zip(*[part.column(c).to_pylist() for c in part.column_names],
                               strict=True):  # fmt: skip
                    cp.write_row(row)
        pg_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in range(0, m, BATCH):
            write_segment(work / "f", labels.slice(s, BATCH), prefix="fb")
        pq_write = time.perf_counter() - t0
        dcon = duckdb.connect()
        dcon.execute("SET threads TO 2")
        p = f"read_parquet('{work}/p/*.parquet')"
        segments = f"read_parquet('{work}/f/*.parquet')"
        one = work / "f-one.parquet"
        dcon.execute(f"COPY (SELECT * FROM {segments}) TO '{one}' (FORMAT parquet)")

        def from_table() -> Any:
            with con.cursor() as cur:
                cur.execute("SELECT request_id, label, received_ts FROM feedback")
                rows = cur.fetchall()
            fb = pa.table({k: [r[i] for r in rows] for i, k in
                           enumerate(("request_id", "label", "received_ts"))})  # fmt: skip
            dcon.register("fb", fb)
            return dcon.execute(JOIN.format(f="fb", p=p)).fetchall()

        out = {
            "predictions": n, "labels": m, "batches": m // BATCH,
            "pg_write_s": pg_write, "parquet_write_s": pq_write,
            "join_segments_s": _timed(
                lambda: dcon.execute(JOIN.format(f=segments, p=p)).fetchall()),
            "join_compacted_s": _timed(
                lambda: dcon.execute(JOIN.format(f=f"read_parquet('{one}')", p=p)).fetchall()),
            "join_from_pg_table_s": _timed(from_table),
            "load": os.getloadavg()[0],
        }  # fmt: skip
        print(json.dumps(out, indent=1))
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
