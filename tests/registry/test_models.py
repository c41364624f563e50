"""The model registry on a real MLflow SQLite store: versions, aliases, verified loading."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from keizoku.data.schema import infer_schema
from keizoku.errors import IntegrityError, NotFoundError, UserInputError
from keizoku.lifecycle.retrain import train_gated
from keizoku.project import init_project
from keizoku.registry import models
from keizoku.registry.backend import client
from keizoku.registry.refs import ModelRef, parse_ref
from keizoku.spec import DataSpec


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("cancer")
    mp = pytest.MonkeyPatch()
    mp.setenv("KEIZOKU_HOME", str(root / ".keizoku"))
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(root / "cancer.csv", index=False)
    init_project(
        str(root / "cancer.csv"), "target", read=DataSpec(), spec_path=root / "keizoku.yaml"
    )
    train_gated(
        root / "keizoku.yaml", overrides={"budget": "60s", "preset": "fast", "max_trials": 3}
    )
    yield root, frame
    mp.undo()


def test_refs_parse_and_reject_bad_text() -> None:
    assert parse_ref("churn") == ModelRef("churn", "champion", None)
    assert parse_ref("churn@challenger") == ModelRef("churn", "challenger", None)
    assert parse_ref("churn:3") == ModelRef("churn", None, 3)
    with pytest.raises(UserInputError, match="Use NAME, NAME@alias or NAME:version"):
        parse_ref("churn@@x")


def test_version_carries_hash_fingerprints_and_artifacts(project) -> None:  # type: ignore[no-untyped-def]
    info = models.get_version("cancer@champion")
    assert info.version == 1 and info.aliases == ["champion"]
    assert len(info.tags["keizoku.sha256"]) == 64
    assert len(info.tags["keizoku.data_sha256"]) == 64
    assert len(info.tags["keizoku.schema_sha256"]) == 64
    assert info.metrics["cv_roc_auc"] > 0.95
    recorded = models.recorded_artifacts(info.tags)
    assert recorded[models.MODEL_FILE] == info.tags["keizoku.sha256"]
    assert {"schema.yaml", "leaderboard.csv", "training.json", "reference.json",
            "model_card.md"} <= set(recorded)  # fmt: skip
    assert all(len(sha) == 64 for sha in recorded.values())
    board = pd.read_csv(models.version_artifact("cancer:1", "leaderboard.csv"))
    assert {"model", "score", "latency_ms", "size_mb"} <= set(board.columns)
    assert models.version_artifact("cancer:1", "schema.yaml").read_text().startswith("# keizoku")


def test_trials_are_child_runs_of_one_parent(project) -> None:  # type: ignore[no-untyped-def]
    c = client()
    exp = c.get_experiment_by_name("cancer")
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("keizoku.kind") == "train"]
    trials = [r for r in runs if r.data.tags.get("keizoku.kind") == "trial"]
    assert len(parents) == 1 and len(trials) >= 2
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parents[0].info.run_id}
    ok = [t for t in trials if t.data.tags["keizoku.status"] == "ok"]
    assert all("cv_score" in t.data.metrics and "model" in t.data.params for t in ok)


def test_mlflow_pyfunc_scores_like_keizoku(project) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    _, frame = project
    client()
    pyfunc = mlflow.pyfunc.load_model("models:/cancer@champion")
    sample = frame.drop(columns=["target"]).head(25)
    ours = models.load_model("cancer").score_frame(sample)
    theirs = pyfunc.predict(sample)
    np.testing.assert_allclose(theirs["proba_1"], ours["proba_1"])


def test_tampered_model_file_is_refused(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = models.version_artifact("cancer:1", models.MODEL_FILE)
    original = path.read_bytes()
    models._cache.clear()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(IntegrityError) as exc:
            models.load_model("cancer:1")
        assert "was modified after registration" in str(exc.value)
        assert "Refusing to load it." in str(exc.value)
    finally:
        path.write_bytes(original)
    assert models.load_model("cancer:1").task == "binary"


def test_missing_alias_and_version_are_not_found(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError, match="has no version with alias 'staging'"):
        models.resolve("cancer@staging")
    with pytest.raises(NotFoundError, match="Model 'cancer' has no version 42"):
        models.resolve("cancer:42")


def test_schema_of_registered_model_matches_inference(project) -> None:  # type: ignore[no-untyped-def]
    _, frame = project
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = infer_schema(frame, "target")
    assert models.load_model("cancer").schema.names == expected.names


def test_every_artifact_is_hash_checked_when_read(project) -> None:  # type: ignore[no-untyped-def]
    path = models.version_artifact("cancer:1", "reference.json")
    original = path.read_bytes()
    try:
        path.write_bytes(original[: len(original) // 2])
        with pytest.raises(IntegrityError) as exc:
            models.version_artifact("cancer:1", "reference.json")
        assert exc.value.message.startswith(
            "Artifact 'reference.json' of cancer:1 was modified after registration: sha256 "
        )
        assert exc.value.message.endswith(
            "Refusing to use it; restore the file or retrain with `keizoku train`."
        )
        with pytest.raises(IntegrityError, match="reference.json"):
            models.verify_version("cancer", 1)
    finally:
        path.write_bytes(original)
    models.verify_version("cancer", 1)


def test_names_are_checked_before_the_registry_is_asked(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserInputError, match="is not valid: use 1-64 ASCII letters"):
        models.list_versions("x' OR name LIKE '%")
    with pytest.raises(UserInputError, match="is not valid"):
        models.require_model("a" * 300)
    with pytest.raises(NotFoundError) as exc:
        models.require_model("cancr")
    assert exc.value.message.startswith("No registered model named 'cancr'; did you mean 'cancer'?")
    assert models.require_model("cancer") == "cancer"


def test_the_sqlite_reader_reads_what_mlflow_reads(project) -> None:  # type: ignore[no-untyped-def]
    from keizoku.home import mlflow_uri
    from keizoku.registry import backend
    from keizoku.registry.backend import MLFLOW_HEAD, open_reader

    assert MLFLOW_HEAD == backend._head()  # the pinned MLflow's schema head
    c = client()
    db = backend.sqlite_path(mlflow_uri())
    reader = open_reader(db)
    assert reader is not None
    assert [m.name for m in reader.search_registered_models()] == [
        m.name for m in c.search_registered_models()
    ]
    assert reader.get_registered_model("cancer").aliases == c.get_registered_model("cancer").aliases
    ours, theirs = (
        reader.search_model_versions("name='cancer'"),
        c.search_model_versions("name='cancer'"),
    )
    assert sorted(v.version for v in ours) == sorted(v.version for v in theirs) == [1]
    for mv in theirs:
        got = reader.get_model_version("cancer", mv.version)
        mv = c.get_model_version("cancer", mv.version)  # search results carry no aliases
        assert (got.name, got.run_id, got.source, got.creation_timestamp) == (
            mv.name, mv.run_id, mv.source, mv.creation_timestamp
        )  # fmt: skip
        assert got.tags == mv.tags and got.aliases == sorted(mv.aliases)
        assert reader.get_model_version_download_uri(
            "cancer", mv.version
        ) == c.get_model_version_download_uri("cancer", mv.version)
        assert reader.get_run(mv.run_id).data.metrics == c.get_run(mv.run_id).data.metrics
        with reader.reading():  # one connection for all, closed after: the same answers
            assert reader.get_run(mv.run_id) == reader.get_run(mv.run_id)
            assert reader.get_model_version("cancer", mv.version) == got
        assert reader._conn is None
    champion = reader.get_model_version_by_alias("cancer", "champion")
    assert champion.version == c.get_model_version_by_alias("cancer", "champion").version
    for missing in (
        lambda: reader.get_registered_model("nope"),
        lambda: reader.get_model_version("cancer", "99"),
        lambda: reader.get_model_version_by_alias("cancer", "nope"),
    ):
        with pytest.raises(NotFoundError):
            missing()


def test_the_sqlite_reader_takes_only_a_healthy_prepared_store(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from keizoku.registry import backend
    from keizoku.registry.backend import MLFLOW_HEAD, open_reader

    db = tmp_path / "mlflow.db"
    assert open_reader(db) is None  # no file: the MlflowClient path creates it
    backend.prepare(f"sqlite:///{db}")
    assert open_reader(db) is not None
    for damage in (
        "CREATE TABLE _alembic_tmp_model_versions (name VARCHAR(256))",
        "UPDATE alembic_version SET version_num = 'abc'",
        "DROP TABLE model_version_tags",
    ):
        copy = tmp_path / f"{len(damage)}.db"
        with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(copy)) as dst:
            src.backup(dst)
        with closing(sqlite3.connect(copy)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(damage)
            conn.commit()
        assert open_reader(copy) is None, damage
    rollback = tmp_path / "rollback.db"
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(rollback)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    assert open_reader(rollback) is None  # not switched to WAL by prepare yet
    assert MLFLOW_HEAD in db.read_bytes().decode("latin-1")


def test_the_registry_mark_moves_with_every_write_and_only_then(tmp_path: Path) -> None:
    """What lets an idle server's poll skip the full read: reads leave the mark alone, a
    commit moves it, and a file written in the last RACY_S seconds gives no mark."""
    import os
    import sqlite3
    import time
    from contextlib import closing

    from keizoku.registry import backend

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    backend.prepare(uri)
    assert backend.registry_mark(uri) is None  # just written: it could change unseen

    def age(seconds: float) -> None:
        for path in (db, db.with_name("mlflow.db-wal")):
            if path.exists():
                os.utime(path, (time.time() - seconds, time.time() - seconds))

    age(10)
    mark = backend.registry_mark(uri)
    assert mark is not None
    reader = backend.open_reader(db)
    assert reader is not None and reader.search_registered_models() == []
    assert backend.registry_mark(uri) == mark  # reading writes nothing
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO registered_models (name, creation_time) VALUES ('m', 0)")
        conn.commit()
    assert backend.registry_mark(uri) != mark
    age(5)
    assert backend.registry_mark(uri) not in (None, mark)
    assert backend.registry_mark("postgresql://u@h/db") is None  # no cheap mark: read it all


def test_a_remembered_resolve_never_outlives_a_write(project: tuple[Path, pd.DataFrame]) -> None:
    """``resolve`` gives a remembered answer only while the registry's mark is unchanged:
    an alias deleted by another writer is seen by the next call, even with a settled mark."""
    import os
    import time

    from keizoku.home import mlflow_uri
    from keizoku.registry.backend import sqlite_path

    db = sqlite_path(mlflow_uri())
    assert db is not None

    def settle() -> None:  # files older than RACY_S: the mark is given, answers remembered
        for path in (db, db.with_name(db.name + "-wal")):
            if path.exists():
                os.utime(path, (time.time() - 10, time.time() - 10))

    models.set_alias("cancer", "memo", 1)
    settle()
    assert models.resolve("cancer@memo") == ("cancer", 1)
    assert models.resolve("cancer@memo") == ("cancer", 1)  # remembered
    models.delete_alias("cancer", "memo")
    settle()
    assert models.registry_mark() is not None
    with pytest.raises(NotFoundError, match="no version with alias 'memo'"):
        models.resolve("cancer@memo")


def test_mlflow_still_checks_the_schema_of_a_store_prepare_did_not(
    project: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """``client()`` spares MLflow its schema check only for the stores ``prepare`` checked in
    this process; MLflow still refuses an out-of-date store opened past ``prepare``."""
    import sqlite3
    from contextlib import closing

    from alembic.script import ScriptDirectory
    from mlflow.exceptions import MlflowException
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from keizoku.home import mlflow_uri
    from keizoku.registry import backend
    from keizoku.registry.backend import MLFLOW_HEAD

    assert client().get_experiment_by_name("cancer") is not None  # its store: prepared
    db = backend.sqlite_path(mlflow_uri())
    assert db is not None
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(old)) as dst:
        src.backup(dst)
    previous = ScriptDirectory.from_config(_get_alembic_config("")).get_revision(MLFLOW_HEAD)
    with closing(sqlite3.connect(old)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (previous.down_revision,))
        conn.commit()
    with pytest.raises(MlflowException, match="out-of-date database schema"):
        SqlAlchemyStore(f"sqlite:///{old}", (tmp_path / "artifacts").as_uri())


def test_each_version_pins_the_installed_libraries(tmp_path: Path) -> None:
    """Every version's requirements.txt pins keizoku's libraries at the installed versions,
    the second version of a process as the first (the lookup is done once per process); the
    registry client keeps MLflow's loggers at ERROR."""
    import logging
    from importlib import metadata

    from keizoku.registry.tracking import TrainingRun

    mp = pytest.MonkeyPatch()
    mp.setenv("KEIZOKU_HOME", str(tmp_path / ".keizoku"))
    try:
        (tmp_path / "card.md").write_text("# card\n")
        for expected in (1, 2):
            with TrainingRun("pins") as run:
                version = run.register({"stand-in": True}, {"card": tmp_path / "card.md"}, {})  # type: ignore[arg-type]
            assert version == expected
            folder = models._local_dir(client(), "pins", version)
            pins = set((folder / "requirements.txt").read_text().split())
            for dist in ("scikit-learn", "pandas", "numpy", "mlflow"):
                assert f"{dist}=={metadata.version(dist)}" in pins, (version, pins)
        assert logging.getLogger("mlflow").level == logging.ERROR
    finally:
        mp.undo()


def test_registry_writes_ask_mlflow_prompt_question_with_one_query(tmp_path: Path) -> None:
    """MLflow refuses to write the tags and aliases of a prompt (a registered model tagged
    ``mlflow.prompt.is_prompt``) through ``MlflowClient._raise_if_prompt``; on a local
    store keizoku's writes answer that question with one sqlite3 query (decision 0008,
    s16), and leave the missing and the prompt cases to MLflow's own check and errors."""
    import sqlite3
    from contextlib import closing

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from keizoku.home import mlflow_uri
    from keizoku.registry import backend
    from keizoku.registry.tracking import TrainingRun

    assert callable(getattr(MlflowClient, "_raise_if_prompt", None))  # the name _writer sets
    mp = pytest.MonkeyPatch()
    mp.setenv("KEIZOKU_HOME", str(tmp_path / ".keizoku"))
    try:
        (tmp_path / "card.md").write_text("# card\n")
        for name in ("m", "p"):
            with TrainingRun(name) as run:
                run.register({"stand-in": True}, {"card": tmp_path / "card.md"}, {})  # type: ignore[arg-type]
        db = backend.sqlite_path(mlflow_uri())
        assert db is not None
        with closing(sqlite3.connect(db)) as conn:
            conn.execute(
                "INSERT INTO registered_model_tags (key, value, name) VALUES (?, 'true', 'p')",
                (backend.PROMPT_TAG,),
            )
            conn.commit()
        reader = backend.open_reader(db)
        assert reader is not None
        c = client()
        for name, found in (("m", True), ("p", False), ("nope", False)):
            assert reader.is_registered_model(name) is found
            assert models._exists(c, reader, name) is found
            assert models._exists(c, None, name) is found  # MLflow's answer

        # each write keizoku makes goes through the check, with the model's name
        asked: list[str] = []
        writer = models._writer()
        ours = writer._raise_if_prompt

        def recorded(name: str) -> None:
            asked.append(name)
            ours(name)

        writer._raise_if_prompt = recorded
        mp.setattr(models, "_writer", lambda: writer)
        models.set_tag("m", 1, "k", "v")
        models.set_alias("m", "champion", 1)
        models.delete_alias("m", "champion")
        models.delete_tag("m", 1, "k")
        assert asked == ["m"] * 4
        mp.undo()
        mp.setenv("KEIZOKU_HOME", str(tmp_path / ".keizoku"))

        # a prompt and a missing model: the errors MlflowClient gives
        for name in ("p", "nope"):
            for write in (
                lambda c, n: c.set_model_version_tag(n, "1", "k", "v"),
                lambda c, n: c.set_registered_model_alias(n, "champion", "1"),
            ):
                with pytest.raises(MlflowException) as mlflow_error:
                    write(client(), name)
                with pytest.raises(MlflowException) as keizoku_error:
                    write(models._writer(), name)
                assert keizoku_error.value.message == mlflow_error.value.message
                assert keizoku_error.value.error_code == mlflow_error.value.error_code
        assert "k" not in models.get_version("m:1").tags
    finally:
        mp.undo()
