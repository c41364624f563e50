"""A real local Ray cluster for the tests (tests/ray_support.py), one per test file: it
stops when the file's last test has run, not at the end of the worker's session (an idle
cluster's daemons take CPU from every file the worker runs after it). ``ray_cluster`` is
the head alone (one CPU): the commands run through the executable need nothing more;
``two_node_cluster`` adds a worker node to it, once, for the tests of folds spread over
nodes and of a lost node (the file's last tests, so the commands before them do not pay
for a second node: its daemons, and a worker process of every job on it). Skipped only
when ray is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ray_support import Cluster, local_cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="ray is not installed: pip install 'keizoku[ray]'")
    with local_cluster(workers=0) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def two_node_cluster(ray_cluster: Cluster) -> Cluster:
    if len(ray_cluster.nodes) < 2:
        ray_cluster.add_node()
    return ray_cluster
