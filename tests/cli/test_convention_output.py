"""Output convention (issue 12, items 1 and 4): ``--json`` parsed for what it promises,
``-q`` leaves only results, ``-o`` picks the format, tables readable at 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_abalone import NAMES, run, trained_abalone, write_abalone

from keizoku.errors import ExitCode

LONG = ["senior_citizen_flag", "monthly_charges_in_dollars", "payment_method_description",
        "contract_length_in_months", "paperless_billing_enrolled", "churned"]  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_abalone(tmp_path_factory.mktemp("output") / "abalone")


def _wide_file(folder: Path) -> Path:
    path = folder / "churn.csv"
    pay = ["bank transfer", "electronic check"]
    rows = [f"{i % 2},{20 + i % 50}.5,{pay[i % 2]},{[1, 12, 24][i % 3]},{i % 2},"
            f"{'yes' if i % 3 else 'no'}" for i in range(60)]  # fmt: skip
    path.write_text(",".join(LONG) + "\n" + "\n".join(rows) + "\n")
    return path


def _column(out: str, index: int = 0) -> str:
    """The text of a rich table's column ``index``, its folded pieces joined in order."""
    pieces = []
    for line in out.splitlines():
        if line.startswith(("│", "┃")):
            pieces.append(line.replace("┃", "│").split("│")[index + 1].strip())
    return "".join(pieces)


def test_the_schema_table_at_80_columns_cuts_no_name(tmp_path: Path) -> None:
    _wide_file(tmp_path)
    res = run(tmp_path, "init", "churn.csv", "-t", "churned", columns=80)
    assert res.code == 0, res.text
    table = res.out.split("Wrote")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in table
    assert _column(table) == "column" + "".join(LONG)


def test_the_models_table_at_80_columns_cuts_nothing(project: Path) -> None:
    res = run(project, "models", columns=80)
    assert res.code == 0, res.text
    assert max(len(line) for line in res.out.splitlines()) <= 80
    assert "…" not in res.out
    assert _column(res.out, 0) == "modelabalone"
    assert _column(res.out, 2) == "aliaseschampion"
    assert _column(res.out, 7) == "statechampion"


def test_json_of_models_evidence_history_and_profile(project: Path) -> None:
    (row,) = json.loads(run(project, "models", "--json").out)
    assert row["model"] == "abalone" and row["aliases"] == ["champion"]
    assert row["metric"] == "rmse" and float(row["cv_score"]) > 0 and row["members"]

    res = run(project, "evidence", "abalone@champion", "--json")
    assert res.code == 0, res.text
    assert json.loads(res.out) == {"model": "abalone", "version": 1, "sufficient": True,
                                   "refusals": []}  # fmt: skip

    res = run(project, "history", "abalone", "--json")
    entries = [json.loads(line) for line in res.out.splitlines()]
    assert entries and all(e["model"] == "abalone" for e in entries)

    res = run(project, "profile", "abalone.csv", "--no-header", "--names", ",".join(NAMES),
              "-t", "rings", "--json")  # fmt: skip
    assert res.code == 0, res.text
    prof = json.loads(res.out)
    assert [c["name"] for c in prof["profile"]["columns"]] == NAMES
    assert prof["profile"]["rows"] == 400


def test_predict_formats_by_suffix_and_quiet_prints_nothing(project: Path) -> None:
    new = write_abalone(project / "new.csv", rows=12, seed=4, target=False)
    for out in ("p.json", "p.jsonl", "p.parquet", "p.csv"):
        res = run(project, "-q", "predict", new.name, "-m", "abalone@champion", "-o", out)
        assert (res.code, res.out) == (0, ""), res.text
    as_json = json.loads((project / "p.json").read_text())
    lines = [json.loads(x) for x in (project / "p.jsonl").read_text().splitlines()]
    parquet = pd.read_parquet(project / "p.parquet")
    assert len(as_json) == len(lines) == len(parquet) == 12
    assert [r["prediction"] for r in lines] == pytest.approx(list(parquet["prediction"]))
    assert list(lines[0]) == [*NAMES[:-1], "prediction"]

    res = run(project, "predict", new.name, "-m", "abalone", "-o", "p.csv", "--json")
    assert json.loads(res.out) == {"model": "abalone", "rows": 12, "output": "p.csv"}


def test_predict_refuses_an_unknown_suffix_and_json_with_stdout(project: Path) -> None:
    res = run(project, "predict", "new.csv", "-m", "abalone", "-o", "p.xlsx")
    assert res.code == ExitCode.USAGE
    assert res.err.startswith("error: --output 'p.xlsx' must end in .csv, .parquet, .pq, .json")
    res = run(project, "predict", "new.csv", "-m", "abalone", "-o", "-", "--json")
    assert res.code == ExitCode.USAGE
    assert res.err.startswith("error: -o - writes the predictions on stdout, so --json")
