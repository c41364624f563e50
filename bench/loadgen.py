"""One load generator on loopback: POST the same JSON body for a fixed time over N connections.

    python bench/loadgen.py --url http://127.0.0.1:8080/invocations --body-file body.json \
        --connections 16 --duration 15

Uses `wrk` (Debian package `wrk`) with one thread when it is installed, else a bounded asyncio +
httpx generator in this process (one event loop, N keep-alive connections). Prints one JSON
line: requests, rps, p50_ms, p99_ms, errors, generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

WRK_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%BODY%]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(url: str, body: str, connections: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_LUA.replace("%BODY%", body))
        script = fh.name
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s",
           "-s", script, url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    Path(script).unlink(missing_ok=True)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {res.stdout[-500:]} {res.stderr[-500:]}")
    d = json.loads(line[len("WRKJSON "):])
    secs = d["duration_us"] / 1e6
    return {
        "requests": d["requests"],
        "rps": d["requests"] / secs if secs else None,
        "p50_ms": d["p50_us"] / 1000,
        "p99_ms": d["p99_us"] / 1000,
        "errors": d["status_errors"] + d["socket_errors"],
        "generator": "wrk -t1",
    }


async def _worker(client, url: str, body: bytes, t_end: float, lat: list[float],
                  errs: list[int]) -> None:
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        try:
            r = await client.post(url, content=body, headers=headers)
            if r.status_code >= 400:
                errs.append(r.status_code)
        except Exception:  # noqa: BLE001
            errs.append(-1)
        lat.append(time.perf_counter() - t0)


async def _run_py(url: str, body: str, connections: int, duration: float) -> dict:
    import httpx

    lat: list[float] = []
    errs: list[int] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        # warm-up
        for _ in range(5):
            await client.post(url, content=body.encode(), headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        t_end = t0 + duration
        await asyncio.gather(*[_worker(client, url, body.encode(), t_end, lat, errs)
                               for _ in range(connections)])
        secs = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "rps": n / secs,
        "p50_ms": lat[n // 2] * 1000 if n else None,
        "p99_ms": lat[max(0, int(n * 0.99) - 1)] * 1000 if n else None,
        "errors": len(errs),
        "generator": "python asyncio+httpx",
    }


def load(url: str, body: str, connections: int, duration: float, prefer_wrk: bool = True) -> dict:
    if prefer_wrk and shutil.which("wrk"):
        return run_wrk(url, body, connections, duration)
    return asyncio.run(_run_py(url, body, connections, duration))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", type=Path, required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--python", action="store_true", help="use the Python generator, not wrk")
    a = p.parse_args()
    print(json.dumps(load(a.url, a.body_file.read_text(), a.connections, a.duration,
                          prefer_wrk=not a.python)))


if __name__ == "__main__":
    main()
