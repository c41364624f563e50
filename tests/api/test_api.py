"""keizoku.train / keizoku.load: the round trip, the lifecycle, bad input, HTML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keizoku
from keizoku import audit
from keizoku.errors import DataError, KeizokuError, SchemaMismatchError, UserInputError
from keizoku.lifecycle.state import state_of


def test_import_keizoku_stays_cheap() -> None:
    heavy = "('pandas', 'sklearn', 'mlflow')"
    code = f"import sys, keizoku; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert keizoku.train is keizoku.api.train  # type: ignore[attr-defined]


def test_public_names_resolve() -> None:
    for name in keizoku.__all__:
        assert getattr(keizoku, name) is not None, name


def test_a_pickled_model_predicts_the_same(trained: keizoku.Predictor, penguins) -> None:  # type: ignore[no-untyped-def]
    import pickle

    _, test = penguins
    copy = pickle.loads(pickle.dumps(trained))
    pd.testing.assert_series_equal(copy.predict(test), trained.predict(test))
    assert trained.context is not None and copy.context is None
    with pytest.raises(UserInputError, match="unpickled without its training context"):
        copy.register("penguins-pickled")


def test_predictions_and_probabilities(trained: keizoku.Predictor, penguins) -> None:  # type: ignore[no-untyped-def]
    _, test = penguins
    pred = trained.predict(test)
    proba = trained.predict_proba(test)
    assert pred.shape == (len(test),) and list(pred.index) == list(test.index)
    assert list(proba.columns) == ["Adelie", "Chinstrap", "Gentoo"] == trained.classes
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert list(proba.idxmax(axis=1)) == list(pred)
    assert (pred == test["species"]).mean() > 0.9


def test_leaderboard_is_a_dataframe_of_the_trials(trained: keizoku.Predictor) -> None:
    board = trained.leaderboard()
    assert isinstance(board, pd.DataFrame)
    assert len(board) == 2 and set(board["model"]) == {"linear"}
    assert board["chosen"].sum() >= 1
    assert board.metric == "log_loss"
    assert "<table" in board._repr_html_() and "log_loss" in board._repr_html_()


def test_evaluate_gives_the_cli_metrics(trained: keizoku.Predictor, penguins) -> None:  # type: ignore[no-untyped-def]
    _, test = penguins
    metrics = trained.evaluate(test)
    assert {"accuracy", "log_loss", "balanced_accuracy", "f1"} <= set(metrics)
    assert metrics["accuracy"] == pytest.approx((trained.predict(test) == test["species"]).mean())


def test_explain_contributions_add_up(trained: keizoku.Predictor, penguins) -> None:  # type: ignore[no-untyped-def]
    _, test = penguins
    rows = test.head(3)
    found = trained.explain(rows)
    assert list(found.contributions.columns) == trained.model.feature_names
    assert list(found.contributions.index) == list(rows.index)
    total = found.expected + found.contributions.sum(axis=1)
    assert np.allclose(total, found.output, atol=1e-6)
    assert list(found.prediction) == list(trained.predict(rows))


def test_register_load_round_trip(trained: keizoku.Predictor, penguins, module_home: Path) -> None:  # type: ignore[no-untyped-def]
    train, test = penguins
    admission = trained.register("penguins-api", reason="notebook test")
    assert (admission.version, admission.state) == (1, "champion")
    assert (trained.name, trained.version) == ("penguins-api", 1)
    assert state_of("penguins-api", 1) == "champion"
    entries = audit.read("penguins-api")
    assert [e["action"] for e in entries] == ["register", "admit"]
    assert {e["actor"] for e in entries} == {audit.default_actor()}
    for ref in ("penguins-api@champion", "penguins-api:1", "penguins-api"):
        loaded = keizoku.load(ref)
        assert isinstance(loaded, keizoku.Predictor)
        assert (loaded.name, loaded.version) == ("penguins-api", 1)
        pd.testing.assert_series_equal(loaded.predict(test), trained.predict(test))
        pd.testing.assert_frame_equal(loaded.predict_proba(test), trained.predict_proba(test))
    assert list(loaded.leaderboard()["model"]) == list(trained.leaderboard()["model"])
    assert loaded.cv_score == pytest.approx(trained.cv_score)
    with pytest.raises(UserInputError, match="already registered as penguins-api:1"):
        loaded.register("penguins-api")

    # A second version: never around the gates. Without a hold-out it is refused, unregistered.
    second = keizoku.train(train, target="species", budget="60s", max_trials=1, families=["knn"])
    with pytest.raises(UserInputError) as info:
        second.register("penguins-api")
    assert info.value.message == (
        "Model 'penguins-api' already has a champion: pass holdout=<a labelled DataFrame this "
        "model was not trained on> so register() can gate the new version against it, as "
        "`keizoku train` does."
    )
    with pytest.raises(DataError, match="Target column 'species' is not in the hold-out"):
        second.register("penguins-api", holdout=test.drop(columns="species"))
    admission = second.register("penguins-api", holdout=test)
    assert admission.version == 2 and admission.state in ("challenger", "gated-fail")
    assert admission.gates is not None and admission.gates.checks
    assert state_of("penguins-api", 2) == admission.state
    assert state_of("penguins-api", 1) == "champion"
    assert [e["action"] for e in audit.read("penguins-api")][2:4] == ["register", "gate"]


def test_load_refuses_a_tampered_model(trained: keizoku.Predictor, module_home: Path) -> None:
    from keizoku.registry import version_artifact

    trained.register("penguins-tampered")
    path = version_artifact("penguins-tampered:1", "keizoku_model.pkl")
    path.write_bytes(path.read_bytes() + b"\0")
    code = "import keizoku; keizoku.load('penguins-tampered@champion')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "IntegrityError: Model file of penguins-tampered:1 was modified" in proc.stderr


def test_load_unknown_model_is_a_clear_error(module_home: Path) -> None:
    with pytest.raises(KeizokuError, match="No registered model named 'nope'"):
        keizoku.load("nope@champion")


FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]})


@pytest.mark.parametrize(
    ("frame", "target", "error", "message"),
    [
        (
            FRAME.to_dict(),
            "y",
            UserInputError,
            "The training frame must be a pandas DataFrame, not dict: build one with "
            "pd.DataFrame(...) or pd.read_csv(PATH).",
        ),
        (
            FRAME.iloc[:0],
            "y",
            DataError,
            "The training frame has no rows (shape (0, 2)): pass a frame with rows.",
        ),
        (
            FRAME,
            "Y",
            DataError,
            "Target column 'Y' is not in the training frame; did you mean 'y'?",
        ),
        (
            FRAME.assign(y=None),
            "y",
            DataError,
            "Target column 'y' is missing in all 4 rows of the training frame: pass the column "
            "that holds the labels, or fill it.",
        ),
        (
            pd.concat([FRAME, FRAME[["x"]]], axis=1),
            "y",
            DataError,
            "The training frame has duplicate column name(s) ['x']: rename them so each column has "
            "its own name (df.columns = [...]).",
        ),
    ],
    ids=["not-a-frame", "empty", "missing-target", "target-all-null", "duplicate-columns"],
)
def test_bad_training_input_is_one_clear_error(
    frame: object, target: str, error: type[KeizokuError], message: str
) -> None:
    with pytest.raises(error) as info:
        keizoku.train(frame, target=target, budget="5s", max_trials=1)  # type: ignore[arg-type]
    assert info.value.message == message


def test_bad_scoring_input_names_the_fix(trained: keizoku.Predictor, penguins) -> None:  # type: ignore[no-untyped-def]
    _, test = penguins
    with pytest.raises(SchemaMismatchError, match=r"lacks column\(s\) \['island'\]"):
        trained.predict(test.drop(columns="island"))
    with pytest.raises(DataError) as info:
        trained.evaluate(test.drop(columns="species"))
    assert info.value.message == (
        "The data has no target column 'species': evaluate() needs the true values. Add the "
        "column, or use predict() for unlabelled rows."
    )
    with pytest.raises(DataError, match="Column 'island' row 1 holds 'Atlantis'"):
        trained.predict(test.head(2).assign(island="Atlantis"))


def test_regression_has_no_probabilities(module_home: Path) -> None:
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True).frame
    model = keizoku.train(df, target="target", budget="60s", max_trials=1, families=["linear"])
    assert model.task == "regression" and model.classes is None
    assert model.predict(df.head(4)).dtype == float
    r2 = model.evaluate(df)["r2"]
    assert r2 is not None and r2 > 0.3
    with pytest.raises(UserInputError, match="predict_proba needs a classifier"):
        model.predict_proba(df.head(4))


def test_html_is_escaped(module_home: Path) -> None:
    rng = np.random.default_rng(0)
    evil = "<script>alert(1)</script>"
    df = pd.DataFrame(
        {
            evil: rng.normal(size=60),
            "colour": rng.choice(["<b>red</b>", "blue"], size=60),
            "label": rng.choice(["<i>yes</i>", "no & maybe"], size=60),
        }
    )
    model = keizoku.train(df, target="label", budget="60s", max_trials=1, families=["linear"])
    page = model._repr_html_()
    assert "<script>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;i&gt;yes&lt;/i&gt;" in page and "no &amp; maybe" in page
    board = model.leaderboard()._repr_html_()
    assert "<script>" not in board and "{&#x27;C&#x27;" in board
