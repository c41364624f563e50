"""A real local Ray cluster for the tests (a head and one worker node, one CPU each; see
tests/ray_support.py), shared by the session. Skipped only when ray is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ray_support import Cluster, local_cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="ray is not installed: pip install 'keizoku[ray]'")
    with local_cluster(workers=1) as cluster:
        yield cluster
