"""A real local Ray cluster for the tests (a head and one worker node, one CPU each; see
tests/ray_support.py), one per test file: it stops when the file's last test has run, not
at the end of the worker's session (an idle cluster's daemons take CPU from every file
the worker runs after it). Skipped only when ray is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ray_support import Cluster, local_cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="ray is not installed: pip install 'keizoku[ray]'")
    with local_cluster(workers=1) as cluster:
        yield cluster
