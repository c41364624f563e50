"""A pytest plugin that records each test's CPU, subprocesses included (decision 0008).

``PYTHONPATH=src:bench python -m pytest tests -p pytest_cpu`` with ``KEIZOKU_TEST_CPU``
set to a path prefix writes one line per test to ``PREFIX.<worker>`` (``main`` without
xdist): node id, wall seconds, CPU seconds of the pytest process, CPU seconds of the
subprocesses it waited for (every ``keizoku`` command and stopped server). A module or
session fixture counts in the first test that uses it. CPU, unlike wall time, is
comparable between runs on a machine that other people load. Not counted: processes
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    start = time.monotonic()
    own, children = _cpu()
    yield
    own_after, children_after = _cpu()
    prefix = os.environ.get("KEIZOKU_TEST_CPU")
    if prefix:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        seconds = (time.monotonic() - start, own_after - own, children_after - children)
        with open(f"{prefix}.{worker}", "a") as fh:
            fh.write("\t".join([item.nodeid, *(f"{s:.2f}" for s in seconds)]) + "\n")
