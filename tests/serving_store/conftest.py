"""Fixtures for servers whose store is empty, or goes away and comes back.

``own_postgres`` is a PostgreSQL server of this folder's own (module scope), which a test
may stop and start again: the run's shared one (``pgsupport.postgres``) must keep
running for every other test of the run (both workers use it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgsupport import why_no_postgres
from store_outage_support import OwnPostgres, own_postgres_server


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    with own_postgres_server() as pg:
        yield pg
