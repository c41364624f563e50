"""The CLI as a user runs it: init → train → models → predict, and every bad-input path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from kzsupport import KEIZOKU_EXE, REPO, CliResult

PENGUINS = REPO / "examples" / "data" / "penguins.csv"


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".keizoku"

    def run(self, *args: str) -> CliResult:
        env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(self.home)}
        proc = subprocess.run(
            [KEIZOKU_EXE, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return CliResult(proc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("penguins"))
    init = project.run("init", str(PENGUINS), "--target", "species")
    assert init.code == 0, init.text
    train = project.run(
        "train", "--budget", "60s", "--preset", "fast", "--max-trials", "2", "--family", "linear"
    )
    assert train.code == 0, train.text
    project.train_output = train.text  # type: ignore[attr-defined]
    return project


def test_init_writes_an_editable_spec_and_schema(trained: Project) -> None:
    spec = (trained.root / "keizoku.yaml").read_text()
    assert "project: penguins" in spec and "target: species" in spec and "task: multiclass" in spec
    schema = (trained.root / "schema.yaml").read_text()
    assert "name: island" in schema and "kind: categorical" in schema


def test_train_prints_a_leaderboard_and_registers_a_champion(trained: Project) -> None:
    out = trained.train_output  # type: ignore[attr-defined]
    assert "Leaderboard (CV log_loss)" in out
    assert "latency ms/row" in out
    assert "Registered penguins:1 as champion" in out
    models = trained.run("models")
    assert models.code == 0
    assert "penguins 1 champion log_loss" in models.text


def test_predict_writes_one_prediction_per_row(trained: Project) -> None:
    result = trained.run("predict", "--model", "penguins@champion", str(PENGUINS), "-o", "p.csv")
    assert result.code == 0, result.text
    scored = pd.read_csv(trained.root / "p.csv")
    source = pd.read_csv(PENGUINS)
    assert len(scored) == len(source)
    assert set(scored["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert (scored["prediction"] == source["species"]).mean() > 0.9
    parquet = trained.run("predict", "-m", "penguins:1", str(PENGUINS), "-o", "p.parquet")
    assert parquet.code == 0
    again = pd.read_parquet(trained.root / "p.parquet")
    pd.testing.assert_series_equal(again["proba_Gentoo"], scored["proba_Gentoo"], atol=1e-9)


def test_predict_names_the_columns_that_differ_from_training(trained: Project) -> None:
    data = pd.read_csv(PENGUINS).drop(columns=["bill_length_mm"]).rename(columns={"island": "isle"})
    data.to_csv(trained.root / "renamed.csv", index=False)
    result = trained.run("predict", "-m", "penguins", "renamed.csv", "-o", "bad.csv")
    assert result.code == 2
    assert (
        "The data lacks column(s) ['island', 'bill_length_mm'] that the model was trained "
        "with. The data has column(s) the model never saw: ['isle']"
    ) in result.text
    assert not (trained.root / "bad.csv").exists()


def test_a_second_train_on_the_same_data_is_gated(trained: Project) -> None:
    again = trained.run(
        "train", "--budget", "60s", "--search", "random", "--max-trials", "2", "--family", "linear"
    )
    assert again.code == 6, again.text  # not better than the champion: no traffic
    assert "penguins:2 failed its gates" in again.text
    assert "penguins 2 log_loss" in trained.run("models", "penguins").text  # no alias


def test_unknown_model_reference_is_a_clear_error(trained: Project) -> None:
    result = trained.run("predict", "-m", "pengiuns", str(PENGUINS), "-o", "x.csv")
    assert result.code == 3
    assert "No registered model named 'pengiuns'; did you mean 'penguins'?" in result.text


# ---- bad input: message, exit code, nothing registered, nothing half-written ----------


def _nothing_registered(cli) -> None:  # type: ignore[no-untyped-def]
    assert "No registered models yet" in cli("models").text


def test_misspelled_target(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("init", str(PENGUINS), "--target", "Specie")
    assert result.code == 2
    assert "Column 'Specie' is not in the data; did you mean 'species'?" in result.text
    assert not (tmp_path / "keizoku.yaml").exists()


def test_empty_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty.csv").write_text("")
    result = cli("init", "empty.csv", "--target", "y")
    assert result.code == 2
    assert "'empty.csv' is empty (0 bytes)" in result.text


def test_undecodable_bytes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "l.csv").write_bytes("name,y\nJos\xe9,1\nAna,0\n".encode("latin-1"))
    result = cli("init", "l.csv", "--target", "y")
    assert result.code == 2
    assert "--encoding latin-1" in result.text


def test_target_with_one_class(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pd.DataFrame({"x": range(20), "y": ["a"] * 20}).to_csv(tmp_path / "one.csv", index=False)
    result = cli("init", "one.csv", "--target", "y", "--task", "binary")
    assert result.code == 2
    assert "Target 'y' has only one class ('a') in 20 rows" in result.text


def test_regression_target_not_numeric(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("init", str(PENGUINS), "--target", "island", "--task", "regression")
    assert result.code == 2
    assert "Target 'island' is not numeric (for example 'Torgersen')" in result.text


def test_all_missing_column_is_dropped_with_a_warning_and_training_works(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    data = pd.read_csv(PENGUINS).assign(empty=None)
    data.to_csv(tmp_path / "p.csv", index=False)
    init = cli("init", "p.csv", "--target", "species")
    assert init.code == 0
    assert "warning: Column 'empty' is missing in every row; it is ignored." in init.text
    train = cli(
        "train", "--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1"
    )
    assert train.code == 0, train.text
    assert "Registered p:1 as champion" in train.text


def test_failed_training_registers_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", str(PENGUINS), "--target", "species").code == 0
    result = cli("train", "--max-trials", "1", "--family", "linear", "--max-latency-ms", "0.000001")
    assert result.code == 2
    assert "No candidate finished within the budget and limits" in result.text
    _nothing_registered(cli)


def test_bad_spec_key_names_the_key(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", str(PENGUINS), "--target", "species").code == 0
    spec = tmp_path / "keizoku.yaml"
    spec.write_text(spec.read_text().replace("search: bayes", "search: genetic"))
    result = cli("train")
    assert result.code == 2
    assert (
        "keizoku.yaml: train.search = 'genetic' is not valid: Input should be 'bayes', "
        "'random' or 'grid'. Fix train.search (default: 'bayes') in keizoku.yaml."
    ) in result.text


def test_headerless_file_with_question_marks(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        f"{i % 7},{'?' if i % 5 == 0 else i * 0.5},{'a' if i % 2 else 'b'},{i * 2 + (i % 3)}"
        for i in range(80)
    ]
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    init = cli("init", "h.csv", "--no-header", "--na-values", "?", "--target", "col3")
    assert init.code == 0, init.text
    assert "task: regression" in (tmp_path / "keizoku.yaml").read_text()
    train = cli(
        "train", "--budget", "60s", "--preset", "fast", "--max-trials", "1", "--family", "linear"
    )
    assert train.code == 0, train.text


def test_mlflow_pyfunc_scores_a_plain_csv_frame(
    trained: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow.pyfunc` users load the registered model and score pandas' own dtypes.

    In this process (a new interpreter cost seconds of imports), on the module's home."""
    import mlflow

    from keizoku.registry.backend import client

    monkeypatch.setenv("KEIZOKU_HOME", str(trained.home))
    client()
    m = mlflow.pyfunc.load_model("models:/penguins@champion")
    out = m.predict(pd.read_csv(PENGUINS).drop(columns=["species"]))
    assert [len(out), sorted(out.columns)[0], out["prediction"].iloc[0]] == [
        344, "prediction", "Adelie"]  # fmt: skip
