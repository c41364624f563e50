"""A pytest plugin that records each test's CPU, subprocesses included (decision 0008).

``PYTHONPATH=src:bench python -m pytest tests -p pytest_cpu`` with ``KEIZOKU_TEST_CPU``
set to a path prefix writes one line per test to ``PREFIX.<worker>`` (``main`` without
xdist): node id, wall seconds, CPU seconds of the pytest process, CPU seconds of the
subprocesses it waited for (every ``keizoku`` command and stopped server). A module or
session fixture counts in the first test that uses it. The teardown of a process's last
test, where every session fixture stops (a server started early and stopped there brings
the CPU of its whole life), is a line of its own: ``NODEID [last teardown]``. CPU, unlike
wall time, is comparable between runs on a machine that other people load. Not counted: processes
that leave their parent (the Ray cluster ``ray start`` daemonises: ``tests/distributed``
reads low) and children a test stopped by ``--timeout`` never waited for.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

import pytest


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


Seconds = tuple[float, float, float]  # wall, own CPU, children's CPU
_last_teardown: list[Seconds] = []


def _since(start: float, own: float, children: float) -> Seconds:
    own_after, children_after = _cpu()
    return time.monotonic() - start, own_after - own, children_after - children


def _write(nodeid: str, seconds: Seconds) -> None:
    prefix = os.environ.get("KEIZOKU_TEST_CPU")
    if prefix:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"{prefix}.{worker}", "a") as fh:
            fh.write("\t".join([nodeid, *(f"{s:.2f}" for s in seconds)]) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if nextitem is not None:
        yield
        return
    start, (own, children) = time.monotonic(), _cpu()
    yield
    _last_teardown.append(_since(start, own, children))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    start, (own, children) = time.monotonic(), _cpu()
    _last_teardown.clear()
    yield
    seconds = _since(start, own, children)
    if _last_teardown:
        last = _last_teardown.pop()
        seconds = (seconds[0] - last[0], seconds[1] - last[1], seconds[2] - last[2])
        _write(item.nodeid, seconds)
        _write(f"{item.nodeid} [last teardown]", last)
    else:
        _write(item.nodeid, seconds)
