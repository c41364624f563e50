"""Seams of the export tests: one registry home per module, models fitted once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from export_support import Models


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh KEIZOKU_HOME (real MLflow SQLite store) shared by one test module."""
    home = tmp_path_factory.mktemp("export") / ".keizoku"
    mp = pytest.MonkeyPatch()
    mp.setenv("KEIZOKU_HOME", str(home))
    mp.delenv("KEIZOKU_TRACKING_URI", raising=False)
    mp.delenv("KEIZOKU_ARTIFACT_ROOT", raising=False)
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def models(registry_home: Path) -> Models:
    return Models(registry_home.parent)
