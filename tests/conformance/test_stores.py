"""Every registry store through the same checks: SQLite, and PostgreSQL where it can run.

The store is picked by URL (``KEIZOKU_TRACKING_URI``), as users pick it. PostgreSQL runs
as a real server (``tests/pgsupport.py``: ``initdb`` + ``pg_ctl`` on a loopback port, one
database per test); without the server binaries or the ``psycopg`` driver its cases skip, saying
which is missing. Checks: register, aliases, tags and a verified load; commands
registering at once get distinct, complete versions; a damaged schema is found, refused
with the repair command, and repaired.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from keizoku.data.schema import infer_schema
from keizoku.errors import ConflictError, ExitCode, NotFoundError
from keizoku.registry import backend, models
from keizoku.registry.tracking import TrainingRun
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.model import KeizokuModel
from keizoku.training.search import run_search
from kzsupport import KEIZOKU_EXE
from pgsupport import migrated_database, postgres  # noqa: F401 (the fixture)

STORES = ("sqlite", "postgresql")
WRITERS = 4  # registrations at once


# ------------------------------------------------------------------ one store per test


@pytest.fixture(scope="module")
def fitted() -> KeizokuModel:
    """A small real model (iris, linear, one trial) that every store registers."""
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(frame, "target")
        cfg = TrainSpec(models=["linear"], max_trials=1, folds=2, search="grid", ensemble=False)
        return run_search(TrainingData.build(frame, schema), cfg).model


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a fresh, empty store of each kind; KEIZOKU_HOME is this test's own.

    Both are at MLflow's head before the test, the migration not being this file's subject:
    the SQLite store is copied from the run's migrated one (``keizoku.registry.seed``), the
    database from the run's migrated one (``pgsupport.migrated_database``)."""
    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path / ".keizoku"))
    monkeypatch.delenv("KEIZOKU_ARTIFACT_ROOT", raising=False)
    if request.param == "sqlite":
        monkeypatch.delenv("KEIZOKU_TRACKING_URI", raising=False)
        return f"sqlite:///{tmp_path / '.keizoku' / 'mlflow.db'}"
    url = migrated_database(request.getfixturevalue("postgres"))  # as a seeded SQLite store
    url = url.replace("postgresql:", "postgresql+psycopg:")
    monkeypatch.setenv("KEIZOKU_TRACKING_URI", url)
    return url


def _register(model: object, name: str = "iris") -> int:
    with TrainingRun(name) as run:
        return run.register(model, {}, {"keizoku.origin": "conformance"})  # type: ignore[arg-type]


# ------------------------------------------------------------------ the checks


def test_register_alias_tag_and_load(store: str, fitted: KeizokuModel) -> None:
    assert models.list_models() == []
    first, second = _register(fitted), _register(fitted)
    assert (first, second) == (1, 2)
    assert models.list_models() == ["iris"] and models.require_model("iris") == "iris"
    info = models.get_version("iris:1")
    assert info.tags["keizoku.state"] == "registered" and info.aliases == []
    assert info.tags["keizoku.origin"] == "conformance" and len(info.tags["keizoku.sha256"]) == 64
    with pytest.raises(NotFoundError, match="has no version with alias 'champion'"):
        models.resolve("iris")
    models.set_alias("iris", "champion", 1)
    models.set_alias("iris", "challenger", 2)
    assert models.resolve("iris") == ("iris", 1)
    assert models.aliases("iris") == {"champion": 1, "challenger": 2}
    assert [v.aliases for v in models.list_versions("iris")] == [["champion"], ["challenger"]]
    models.set_alias("iris", "champion", 2)  # an alias moves: it names one version only
    models.delete_alias("iris", "challenger")
    assert models.aliases("iris") == {"champion": 2}
    models.set_tag("iris", 2, "keizoku.state", "champion")
    models.delete_tag("iris", 1, "keizoku.origin")
    assert models.get_version("iris:2").tags["keizoku.state"] == "champion"
    assert "keizoku.origin" not in models.get_version("iris:1").tags
    models._cache.clear()
    loaded = models.load_model("iris@champion")
    frame = load_iris(as_frame=True).frame.drop(columns=["target"]).head(20)
    assert loaded.predict(frame) == fitted.predict(frame)
    models.verify_version("iris", 2)
    models.delete_version("iris", 1)
    assert [v.version for v in models.list_versions("iris")] == [2]


def test_registrations_at_once_get_distinct_complete_versions(
    store: str, fitted: KeizokuModel
) -> None:
    """Writers start together; the store's lock (an ``flock`` per open file, so threads
    contend for it as processes do) lets one register at a time."""
    backend.client()  # the schema exists: the writers race on registering, not on creating it
    start = threading.Barrier(WRITERS)

    def write(i: int) -> int:
        start.wait(timeout=60)
        with TrainingRun("iris") as run:
            return run.register(fitted, {}, {"keizoku.writer": str(i)})

    with ThreadPoolExecutor(WRITERS) as pool:
        printed = sorted(pool.map(write, range(WRITERS)))
    assert printed == list(range(1, WRITERS + 1))
    versions = models.list_versions("iris")
    assert [v.version for v in versions] == printed
    assert sorted(v.tags["keizoku.writer"] for v in versions) == [str(i) for i in range(WRITERS)]
    for v in versions:
        assert v.tags["keizoku.state"] == "registered"
        models.verify_version("iris", v.version)
    # MLflow swaps a stand-in ``dbutils`` module in and out of sys.modules while it loads a
    # model logged as code; two loads at once used to leave the stand-in there for good
    assert type(sys.modules.get("dbutils")).__name__ != "MockDbutils", sys.modules["dbutils"]


def test_a_damaged_store_is_refused_with_the_repair_command_and_repaired(
    store: str, fitted: KeizokuModel
) -> None:
    import sqlalchemy

    _register(fitted)
    engine = sqlalchemy.create_engine(store)
    with engine.begin() as conn:  # what an interrupted migration leaves behind
        conn.exec_driver_sql("CREATE TABLE _alembic_tmp_model_versions (name VARCHAR(256))")
    engine.dispose()
    health = backend.check(store)
    assert not health.ok
    assert health.problems() == [
        "a table '_alembic_tmp_model_versions' left by an interrupted schema migration"
    ]
    result = subprocess.run(
        [KEIZOKU_EXE, "models"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == ExitCode.CONFLICT == ConflictError.exit_code, result.stderr
    assert "is damaged" in result.stderr and "keizoku doctor --repair" in result.stderr
    assert "Traceback" not in result.stderr
    repaired = backend.repair(store)
    assert repaired.dropped == ["_alembic_tmp_model_versions"] and repaired.after.ok
    assert [v.version for v in models.list_versions("iris")] == [1]
