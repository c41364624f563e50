"""A bounded schemathesis fuzz of the served OpenAPI document: no request gets a 5xx.

Each operation gets 25 schema-conforming and 25 schema-violating requests (hypothesis
drives schemathesis' strategies directly; its pytest plugin is not used and pyproject's
addopts turn it off). schemathesis is imported where it is used, not at collection.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable


@pytest.fixture(scope="module")
def operations(server: Any) -> list[Any]:
    """The served document's operations, read once for both generation modes."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    found = schema.exclude(path_regex="^/v1/rag/").get_all_operations()
    ops = [result.ok() for result in found]  # type: ignore[union-attr]
    assert any(op.path == "/v1/models/clinic/predict" for op in ops)
    return ops


@pytest.mark.parametrize("mode", ["positive", "negative"])  # schemathesis.GenerationMode
def test_no_server_errors(operations: list[Any], mode: str) -> None:
    from schemathesis import GenerationMode

    generation = GenerationMode(mode)
    failures: list[str] = []
    for op in operations:

        @given(case=op.as_strategy(generation_mode=generation))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r:.300} -> {response.text}")

        try:
            run()
        except Unsatisfiable:  # nothing to break in e.g. GET /healthz
            if generation is GenerationMode.POSITIVE:
                raise
    assert not failures, failures[:5]
