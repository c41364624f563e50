"""A real local Ray cluster for tests/distributed and the bench: a head and worker nodes,
each a `ray start --block` process group of its own (one CPU each), in a short temporary
folder; torn down by SIGKILL to those process groups and the processes below them (by
id, never by name; a test cluster keeps nothing, so nothing waits for a graceful end).
Only what the tests use runs: no log monitor (drivers connect with
``log_to_driver=False``), no autoscaler monitor (the nodes are fixed), and the head's
health checks every half second, so a killed node is reported dead in about three
seconds rather than twenty (Ray's defaults: 5 s, then every 3 s, 5 failures)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kzsupport import REPO, free_port

RAY_EXE = str(Path(sys.executable).with_name("ray"))
START_S = 120.0  # a node joins in seconds on an idle machine; the 2-core one is not idle
# The head's GCS checks each node this often; 5 failed checks in a row (Ray's default
# threshold, kept) mark it dead. A check of a live node fails only after
# health_check_timeout_ms (10 s, kept) without an answer, so a busy machine does not make
# a live node look dead.
HEALTH_CHECKS = {"health_check_initial_delay_ms": 500, "health_check_period_ms": 500}
# A node keeps up to this many idle worker processes of a live job (Ray's default: its CPU
# count, one here) instead of killing them after a second: the tests' own driver (this
# process, one job for the whole file) keeps the fold workers its first search started
# for its last one, while the CLI's jobs, in between, start workers of their own (a job's
# workers still end with it). Each new worker imports ray, sklearn and lightgbm (~1.5 s
# of CPU).
WORKERS_KEPT = {"num_workers_soft_limit": 4}
# Every node: no log monitor (nothing reads the workers' logs: drivers connect with
# log_to_driver=False) and one CPU.
# A driver (a `keizoku ... --ray` the tests run) as the nodes are: no usage statistics (Ray
# Data starts an actor to collect them).
DRIVER_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
NODE_ARGS = ["--num-cpus=1", "--disable-usage-stats", "--include-log-monitor=false", "--block"]


@dataclass
class Node:
    """One `ray start --block` process (and its process group: gcs, raylet, workers)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def raylet_pid(self) -> int:
        """The pid of this node's raylet (a child of the `ray start` process)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
            except (OSError, IndexError):
                continue
            if comm == "raylet" and int(fields[1]) == self.proc.pid:
                return int(stat.parent.name)
        raise AssertionError(f"no raylet under pid {self.proc.pid}; log: {self.log.read_text()}")

    def kill(self, tree: list[int]) -> None:
        """SIGKILL to the node's process group and to all its descendants (``tree``, read
        before: Ray's workers run in sessions of their own, so the group alone does not
        reach them, and once the raylet is gone they are no longer below the node)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the node had already ended
            pass
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (read from /proc: pid → parent pid)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += children
        frontier = children
    return found


@dataclass
class Cluster:
    address: str
    folder: Path
    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)

    def add_node(self) -> Node:
        """A worker node joining the head, started and waited for."""
        node = _start(
            [f"--address={self.address}", f"--dashboard-agent-listen-port={free_port()}"],
            self.folder / f"node{len(self.nodes)}.log",
            self.env,
        )
        self.nodes.append(node)
        _wait_for_nodes(self, sum(n.proc.poll() is None for n in self.nodes))
        return node


def _start(args: list[str], log: Path, env: dict[str, str]) -> Node:
    out = log.open("wb")
    proc = subprocess.Popen(
        [RAY_EXE, "start", *NODE_ARGS, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: torn down by id, with its children
    )
    return Node(proc, log)


def _wait_for_port(port: int, node: Node) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError(f"ray start exited: {node.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Ray head did not open port {port}: {node.log.read_text()[-2000:]}")


def _wait_for_nodes(cluster: Cluster, n: int) -> None:
    ray = _driver(cluster)
    deadline = time.monotonic() + START_S
    while sum(node["Alive"] for node in ray.nodes()) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} Ray nodes did not join within {START_S:g}s")
        time.sleep(0.5)


def _driver(cluster: Cluster) -> Any:
    """This process connected to the cluster (as `--ray ADDRESS` connects)."""
    from keizoku.distributed.cluster import connect

    return connect(cluster.address)


@contextmanager
def local_cluster(workers: int = 1) -> Iterator[Cluster]:
    """A head and ``workers`` worker nodes on this machine, one CPU each; this process is
    connected to it as a driver while it runs."""
    # Short: Ray's unix sockets live under it (a socket path has at most 107 bytes).
    folder = Path(tempfile.mkdtemp(prefix="kzray-", dir="/tmp"))
    src = str(REPO / "src")
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}", folder, env)
    head_args = [
        "--head",
        f"--port={port}",
        "--include-dashboard=false",
        f"--temp-dir={folder / 't'}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--no-monitor",  # the autoscaler's: a fixed set of nodes has nothing to scale
        f"--system-config={json.dumps(HEALTH_CHECKS | WORKERS_KEPT)}",
    ]
    head = _start(head_args, folder / "head.log", env)
    cluster.nodes.append(head)
    try:
        _wait_for_port(port, head)
        for _ in range(workers):
            cluster.add_node()
        _wait_for_nodes(cluster, 1 + workers)  # the head's own raylet, without workers
        yield cluster
    finally:
        try:
            import ray

            ray.shutdown()
        finally:  # the nodes go even when the driver's shutdown fails
            _stop_all(cluster)


def _stop_all(cluster: Cluster) -> None:
    """SIGKILL to every node's processes, all read first. Nothing of a test cluster is kept
    (its folder goes next), so nothing waits for a graceful end: on SIGTERM, `ray start`
    noticed its processes' exit at its next one-second poll after they had shut down,
    1.3-3.8 s of the test file's wall."""
    try:
        trees = [(node, _descendants(node.proc.pid)) for node in cluster.nodes]
        for node, tree in trees:
            node.kill(tree)
    finally:
        shutil.rmtree(cluster.folder, ignore_errors=True)
