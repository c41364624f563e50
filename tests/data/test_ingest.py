"""Reading every supported source, and the errors users hit with real files."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from keizoku.data.ingest import ReadOptions, fingerprint_frame, read_table
from keizoku.errors import DataError, UserInputError

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, None, 2.5]})


def test_csv_tsv_gz_parquet_jsonl_read_the_same_table(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "t.csv", index=False)
    FRAME.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    with gzip.open(tmp_path / "t.tsv.gz", "wt") as fh:
        FRAME.to_csv(fh, sep="\t", index=False)
    FRAME.to_parquet(tmp_path / "t.parquet")
    FRAME.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name in ("t.csv", "t.tsv", "t.tsv.gz", "t.parquet", "t.jsonl"):
        got = read_table(tmp_path / name)
        assert list(got.columns) == ["a", "b", "c"], name
        assert got["a"].tolist() == [1, 2, 3], name
        assert got["b"].isna().tolist() == [False, False, True], name


def test_headerless_file_gets_col_names_and_question_marks_are_missing(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("1,?,a\n2,3.5,b\n")
    got = read_table(tmp_path / "h.csv", ReadOptions(header=False, na_values=["?"]))
    assert list(got.columns) == ["col0", "col1", "col2"]
    assert got["col1"].isna().tolist() == [True, False]
    assert got["col1"].dtype.kind == "f"


def test_custom_separator_and_drop(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("a;b;c\n1;2;3\n")
    got = read_table(tmp_path / "s.txt", ReadOptions(sep=";", drop=["b"]))
    assert list(got.columns) == ["a", "c"]


def test_drop_of_unknown_column_names_it(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserInputError) as exc:
        read_table(tmp_path / "t.csv", ReadOptions(drop=["nope"]))
    assert str(exc.value) == (
        "--drop names column(s) ['nope'] that are not in the data. Columns are: ['a', 'b', 'c']"
    )


def test_sql_from_sqlite_duckdb_and_sqlalchemy_url(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with sqlite3.connect(db) as conn:
        FRAME.to_sql("t", conn, index=False)
    duck = tmp_path / "d.duckdb"
    con = duckdb.connect(str(duck))
    con.execute("CREATE TABLE t AS SELECT * FROM FRAME")
    con.close()
    for target in (str(db), str(duck), f"sqlite:///{db}"):
        got = read_table(None, ReadOptions(sql="SELECT a, c FROM t WHERE a > 1", db=target))
        assert got["a"].tolist() == [2, 3], target


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError) as exc:
        read_table(tmp_path / "e.csv")
    assert (
        str(exc.value)
        == f"'{tmp_path / 'e.csv'}' is empty (0 bytes). Point keizoku at a file with rows."
    )


def test_header_without_rows_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="has a header but no rows"):
        read_table(tmp_path / "h.csv")


def test_undecodable_bytes_name_the_encoding_option(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("name,x\nJos\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError) as exc:
        read_table(tmp_path / "l.csv")
    msg = str(exc.value)
    assert "Cannot decode" in msg and "byte 0xe9" in msg and "--encoding latin-1" in msg
    got = read_table(tmp_path / "l.csv", ReadOptions(encoding="latin-1"))
    assert got["name"].tolist() == ["José"]


def test_unsupported_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(UserInputError, match=r"Unsupported file type '\.xlsx'"):
        read_table(tmp_path / "x.xlsx")


def test_fingerprint_changes_with_one_value() -> None:
    other = FRAME.copy()
    other.loc[0, "c"] = 0.6
    assert fingerprint_frame(FRAME) == fingerprint_frame(FRAME.copy())
    assert fingerprint_frame(FRAME) != fingerprint_frame(other)
