"""Read options are part of the spec and every reader uses them (issue 12, item 2).

A headerless file read at ``init --no-header --names …`` stays readable by predict, monitor
and report; repeated column names and short/long rows are errors naming their lines unless
accepted; missing-value markers can be given per column.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_abalone import NAMES, run, trained_abalone, write_abalone

from keizoku.data.ingest import ReadOptions, read_table
from keizoku.errors import DataError, ExitCode, KeizokuWarning, UserInputError
from kzsupport import Server

# ----------------------------------------------------------------- the reader itself


def test_per_column_markers_apply_to_their_column_only(tmp_path: Path) -> None:
    path = tmp_path / "pima.csv"
    path.write_text("glucose,insulin,pregnancies\n0,0,0\n85,0,1\n?,94,2\n")
    opts = ReadOptions(na_values=["?"], column_na_values={"glucose": ["0"], "insulin": ["0"]})
    frame = read_table(path, opts)
    assert frame["glucose"].isna().tolist() == [True, False, True]
    assert frame["insulin"].isna().tolist() == [True, True, False]
    assert frame["pregnancies"].tolist() == [0, 1, 2]  # zero is a value here


def test_a_marker_for_an_unknown_column_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UserInputError) as caught:
        read_table(path, ReadOptions(column_na_values={"glucose": ["0"]}))
    assert caught.value.message == (
        "--na-values names column(s) ['glucose'] that are not in the data. Columns are: ['a', 'b']"
    )


def test_a_repeated_column_name_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("x,y,x\n1,2,3\n")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message.startswith(
        f"The header of '{path}' repeats column name(s) ['x'] (line 1). Rename them, or pass "
        "--allow-duplicate-columns"
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", KeizokuWarning)
        frame = read_table(path, ReadOptions(allow_duplicate_columns=True))
    assert list(frame.columns) == ["x", "y", "x.1"]
    assert [str(w.message) for w in seen] == [
        f"'{path}': 1 repeated column name(s) ['x'] read as ['x', 'x.1']."
    ]


def test_short_and_long_rows_are_errors_naming_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.message.startswith(
        f"'{path}' has 1 row(s) with fewer than 3 fields (line 3) and 1 row(s) with more "
        "than 3 fields (line 4). Fix the file"
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", KeizokuWarning)
        frame = read_table(path, ReadOptions(allow_ragged_rows=True))
    assert frame["a"].tolist() == [1, 4, 10]  # the long row dropped, the short one kept
    assert frame["c"].isna().tolist() == [False, True, False]
    assert "accepted 1 row(s) with fewer than 3 fields (line 3)" in str(seen[0].message)


def test_names_must_match_the_width(tmp_path: Path) -> None:
    path = write_abalone(tmp_path / "a.csv", rows=5)
    with pytest.raises(UserInputError) as caught:
        read_table(path, ReadOptions(header=False, names=["a", "b"]))
    assert caught.value.message.startswith("--names gives 2 names but")
    assert "has 9 columns" in caught.value.message
    frame = read_table(path, ReadOptions(header=False, names=NAMES))
    assert list(frame.columns) == NAMES
    lacking = write_abalone(tmp_path / "score.csv", rows=5, target=False)
    opts = ReadOptions(header=False, names=NAMES, target="rings")
    assert list(read_table(lacking, opts).columns) == NAMES[:-1]


# ------------------------------------------------------------- through the executable


def test_init_suggests_no_header_when_the_first_row_is_data(tmp_path: Path) -> None:
    write_abalone(tmp_path / "abalone.csv", rows=50)
    res = run(tmp_path, "init", "abalone.csv", "-t", "rings")
    assert res.code == ExitCode.USAGE, res.text
    assert "look like data: if the file has no header row, rerun with --no-header" in res.text
    assert not (tmp_path / ".keizoku").exists()


def test_init_writes_the_read_keys_into_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "pima.csv"
    rows = [f"{g},{i},{p},{p % 2}" for g, i, p in zip([0, 85, 120] * 20, [0, 94, 0] * 20,
                                                      range(60), strict=True)]  # fmt: skip
    path.write_text("glucose,insulin,pregnancies,outcome\n" + "\n".join(rows) + "\n")
    res = run(tmp_path, "init", "pima.csv", "-t", "outcome", "--na-values",
              "glucose=0,insulin=0", "--json")  # fmt: skip
    assert res.code == 0, res.text
    assert json.loads(res.out)["data"]["column_na_values"] == {"glucose": ["0"], "insulin": ["0"]}
    spec = yaml.safe_load((tmp_path / "keizoku.yaml").read_text())
    assert spec["data"]["column_na_values"] == {"glucose": ["0"], "insulin": ["0"]}
    assert spec["data"]["header"] is True


def test_a_misspelt_read_key_is_refused(tmp_path: Path) -> None:
    write_abalone(tmp_path / "abalone.csv", rows=30)
    (tmp_path / "keizoku.yaml").write_text(
        "project: abalone\ntarget: rings\ndata:\n  path: abalone.csv\n  haeder: false\n"
    )
    res = run(tmp_path, "train", "--budget", "5s")
    assert res.code == ExitCode.USAGE, res.text
    assert "data.haeder is not a known key (did you mean 'header'?)" in res.text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_abalone(tmp_path_factory.mktemp("read") / "abalone")


def test_headerless_predict_monitor_report_use_the_given_names(project: Path) -> None:
    new = write_abalone(project / "new.csv", rows=60, seed=1, target=False)
    res = run(project, "predict", new.name, "-m", "abalone", "-o", "scored.csv")
    assert res.code == 0, res.text
    scored = pd.read_csv(project / "scored.csv")
    assert list(scored.columns) == [*NAMES[:-1], "prediction"]
    assert len(scored) == 60

    labelled = write_abalone(project / "labelled.csv", rows=80, seed=2)
    res = run(project, "monitor", "abalone", "--data", labelled.name, "--json")
    assert res.code in (0, ExitCode.DRIFT, ExitCode.METRIC_DROP), res.err
    report = json.loads(res.out)
    assert {f["feature"] for f in report["features"]} == set(NAMES[:-1])
    assert report["performance"]["n_labels"] == 80  # the headerless target read as 'rings'

    res = run(project, "report", "abalone", "--data", labelled.name, "-o", "r.html", "--json")
    assert res.code == 0, res.text
    assert json.loads(res.out)["output"].endswith("r.html")
    assert "shucked_weight" in (project / "r.html").read_text()


def test_a_flag_overrides_the_spec_read_key(project: Path) -> None:
    with_header = project / "with_header.csv"
    body = write_abalone(project / "tmp.csv", rows=20, seed=3, target=False).read_text()
    with_header.write_text(",".join(NAMES[:-1]) + "\n" + body)
    res = run(project, "predict", with_header.name, "-m", "abalone", "-o", "-", "--header")
    assert res.code == 0, res.text
    assert res.out.splitlines()[0] == ",".join([*NAMES[:-1], "prediction"])
    assert len(res.out.splitlines()) == 21


def test_rest_fields_are_the_given_names(project: Path) -> None:
    server = Server(project, env=_env(project)).wait_ready()
    try:
        row = {"sex": "M", "length": 0.455, "diameter": 0.365, "height": 0.095,
               "whole_weight": 0.514, "shucked_weight": 0.2245, "viscera_weight": 0.101,
               "shell_weight": 0.15}  # fmt: skip
        ok = server.client.post("/v1/models/abalone/predict", json=row)
        assert ok.status_code == 200, ok.text
        numbered = {f"col{i}": v for i, v in enumerate(row.values())}
        refused = server.client.post("/v1/models/abalone/predict", json=numbered)
        assert refused.status_code == 422, refused.text
    finally:
        server.stop()


def _env(project: Path) -> dict[str, str]:
    import os

    return {**os.environ, "KEIZOKU_HOME": str(project / ".keizoku")}
