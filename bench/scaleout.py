"""Requests per second with one vs two ``keizoku serve`` processes on one PostgreSQL store.

    python bench/scaleout.py [--connections 8] [--duration 15] [--rounds 2] [--out FILE]

A throwaway PostgreSQL server (initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin; as
root it runs as the ``postgres`` user) holds the store; penguins is trained on it once
(LightGBM, 2 trials). Two servers start, each with its own home and port, as behind a load
balancer, both with the prediction log on. Then, alternating for ``--rounds`` rounds, the
same single-record predict body is sent for ``--duration`` seconds over ``--connections``
keep-alive connections in total: all to server 1 ("one"), or half to each server at once
("two", one load generator per server; the rates add up). ``bench/loadgen.py`` drives the
load (``wrk`` when installed). The machine's load average is recorded before and after:
on a shared machine the ratio two/one, measured back to back, is the number to read.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from loadgen import load  # noqa: E402

KEIZOKU = str(Path(sys.executable).with_name("keizoku"))
PENGUINS = REPO / "examples" / "data" / "penguins.csv"
BODY = json.dumps({"island": "Biscoe", "bill_length_mm": 45.2, "bill_depth_mm": 15.8,
                   "flipper_length_mm": 215, "body_mass_g": 5300, "sex": "male",
                   "year": 2008})  # fmt: skip


def _pg(exe: str) -> str:
    found = shutil.which(exe) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{exe}"), default="")
    if not found:
        sys.exit(f"bench/scaleout.py: no PostgreSQL '{exe}' (Debian: apt-get install postgresql)")
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "KEIZOKU_HOME": str(home / ".keizoku"), "KEIZOKU_STORE": url,
           "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    for name in ("KEIZOKU_TRACKING_URI", "KEIZOKU_ARTIFACT_ROOT"):
        env.pop(name, None)
    home.mkdir(parents=True, exist_ok=True)
    return env


def _keizoku(home: Path, url: str, *args: str) -> None:
    subprocess.run([KEIZOKU, *args], cwd=home, env=_env(home, url), check=True,
                   capture_output=True, timeout=1200)  # fmt: skip


def _serve(home: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen([KEIZOKU, "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=home, env=_env(home, url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return proc, f"{base}/v1/models/penguins/predict"
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit("bench/scaleout.py: a server did not become ready in 300 s")


def _round(urls: list[str], connections: int, duration: float) -> dict[str, Any]:
    """Load every URL at once, ``connections`` split evenly; the summed rate."""
    each = max(1, connections // len(urls))
    parts: list[dict[str, Any]] = [{} for _ in urls]

    def run(i: int) -> None:
        parts[i] = load(urls[i], BODY, each, duration)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"servers": len(urls), "connections": each * len(urls),
            "rps": sum(p["rps"] for p in parts), "errors": sum(p["errors"] for p in parts),
            "parts": parts}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "work" / "scaleout.json")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="keizoku-scaleout-"))
    pgdir = Path(tempfile.mkdtemp(prefix="keizoku-scaleout-pg-"))  # its own: may change owner
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        user = pwd.getpwnam("postgres")
        os.chown(pgdir, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    ctl = [*as_user, _pg("pg_ctl"), "-D", str(pgdir / "data")]
    subprocess.run([*as_user, _pg("initdb"), "-D", str(pgdir / "data"), "-U", "keizoku",
                    "--auth=trust"], check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1"
    subprocess.run([*ctl, "-o", opts, "-l", str(pgdir / "log"), "-w", "start"], check=True,
                   capture_output=True)  # fmt: skip
    servers: list[subprocess.Popen[bytes]] = []
    try:
        url = f"postgresql://keizoku@127.0.0.1:{port}/postgres"
        project = root / "project"
        _keizoku(project, url, "init", str(PENGUINS), "-t", "species")
        _keizoku(project, url, "train", "--budget", "5m", "--family", "lightgbm",
                 "--max-trials", "2")  # fmt: skip
        urls = []
        for name in ("s1", "s2"):
            proc, predict = _serve(root / name, url)
            servers.append(proc)
            urls.append(predict)
        load_before = os.getloadavg()
        rounds = []
        for _ in range(a.rounds):
            for chosen in (urls[:1], urls):
                rounds.append(_round(chosen, a.connections, a.duration))
        one = [r["rps"] for r in rounds if r["servers"] == 1]
        two = [r["rps"] for r in rounds if r["servers"] == 2]
        out = {
            "connections": a.connections, "duration_s": a.duration, "rounds": rounds,
            "one_server_rps": sum(one) / len(one), "two_servers_rps": sum(two) / len(two),
            "ratio_two_over_one": (sum(two) / len(two)) / (sum(one) / len(one)),
            "load_before": load_before, "load_after": os.getloadavg(),
            "cpus": os.cpu_count(), "generator": rounds[0]["parts"][0].get("generator", "wrk"),
        }  # fmt: skip
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
        print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, indent=1))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(60)
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pgdir, ignore_errors=True)


if __name__ == "__main__":
    main()
