"""Profile: planted leaks, constant/duplicate/all-missing columns, balance, HTML report."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.datasets import load_breast_cancer, load_diabetes

from keizoku.data.profile import Profile, profile_frame, write_profile_html
from keizoku.data.schema import infer_schema
from keizoku.errors import DataError, KeizokuWarning, SchemaMismatchError
from kzsupport import need_shared


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """Breast cancer (569 rows, binary target) with a planted leak, constant and copy."""
    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["leak"] = frame["target"] + rng.normal(0, 0.05, len(frame))
    frame["constant"] = "same"
    frame["radius_copy"] = frame["mean radius"]
    return frame


@pytest.fixture(scope="module")
def cancer_profile(cancer: pd.DataFrame) -> Profile:
    return profile_frame(cancer, infer_schema(cancer, "target"))


def _flags(prof: Profile) -> dict[str, list[str]]:
    return {c.name: c.flags for c in prof.columns}


def test_planted_numeric_leak_is_flagged_and_honest_features_are_not(
    cancer_profile: Profile,
) -> None:
    assert [s.column for s in cancer_profile.leaks] == ["leak"]
    assert cancer_profile.leaks[0].metric == "auc"
    assert cancer_profile.leaks[0].score > 0.99
    honest = {k: v for k, v in cancer_profile.leak_scores.items() if k != "leak"}
    assert len(honest) == 31  # 30 measurements + the copy; the constant is not scored
    assert max(honest.values()) < 0.98
    assert "leak-suspect" in cancer_profile.column("leak").flags
    assert all("leak-suspect" not in cancer_profile.column(k).flags for k in honest)
    assert (
        f"Column 'leak' predicts target 'target' almost perfectly on its own (out-of-fold AUC "
        f"{cancer_profile.leaks[0].score:.3f}): it may leak the answer. Check that it is known "
        "at prediction time; if not, drop it (spec key data.drop)."
    ) in cancer_profile.warnings


def test_constant_and_duplicate_columns_are_flagged(cancer_profile: Profile) -> None:
    flags = _flags(cancer_profile)
    assert flags["constant"] == ["constant"]
    assert flags["radius_copy"] == ["duplicate"]
    assert cancer_profile.column("radius_copy").duplicate_of == "mean radius"
    assert flags["mean radius"] == []
    others = [n for n, f in flags.items() if n not in ("constant", "radius_copy", "leak")]
    assert all(flags[n] == [] for n in others)
    assert (
        "Column 'constant' has one value ('same') in every non-missing row, so it carries no "
        "information: drop it (spec key data.drop)."
    ) in cancer_profile.warnings
    assert (
        "Column 'radius_copy' repeats column 'mean radius' value for value: drop one of them "
        "(spec key data.drop)."
    ) in cancer_profile.warnings


def test_summary_and_column_facts(cancer: pd.DataFrame, cancer_profile: Profile) -> None:
    assert (cancer_profile.rows, cancer_profile.n_columns) == (569, 34)
    assert cancer_profile.duplicate_rows == 0
    assert cancer_profile.memory_bytes == int(cancer.memory_usage(deep=True).sum())
    radius = cancer_profile.column("mean radius")
    assert (radius.kind, radius.role, radius.missing_share) == ("numeric", "feature", 0.0)
    assert radius.distinct == cancer["mean radius"].nunique()
    assert radius.stats is not None
    assert radius.stats["min"] == pytest.approx(cancer["mean radius"].min())
    assert radius.stats["mean"] == pytest.approx(cancer["mean radius"].mean())
    assert radius.stats["max"] == pytest.approx(cancer["mean radius"].max())
    target = cancer_profile.column("target")
    assert target.role == "target"
    assert [(v.value, v.count) for v in target.top] == [("1", 357), ("0", 212)]


def test_binary_target_balance(cancer_profile: Profile) -> None:
    balance = cancer_profile.balance
    assert balance is not None
    assert (balance.target, balance.task, balance.labelled, balance.missing) == (
        "target",
        "binary",
        569,
        0,
    )
    assert [(c.label, c.count) for c in balance.classes] == [(1, 357), (0, 212)]
    assert [c.share for c in balance.classes] == pytest.approx([357 / 569, 212 / 569])


def test_multiclass_balance_and_categorical_leak_via_group_mapping() -> None:
    rng = np.random.default_rng(1)
    counts = {"apple": 600, "pear": 300, "plum": 100}
    y = np.repeat(list(counts), list(counts.values()))
    rng.shuffle(y)
    code = pd.Series(y).map({"apple": "A-1", "pear": "P-2", "plum": "L-3"})
    flip = rng.random(len(y)) < 0.005  # a few rows coded wrongly
    code[flip] = "A-1"
    frame = pd.DataFrame(
        {
            "fruit": y,
            "code": code,
            "colour": rng.choice(["red", "green", "yellow"], len(y)),
            "weight": rng.normal(150, 20, len(y)),
        }
    )
    prof = profile_frame(frame, infer_schema(frame, "fruit"))
    assert prof.task == "multiclass"
    assert prof.balance is not None
    assert [(c.label, c.count, c.share) for c in prof.balance.classes] == [
        ("apple", 600, 0.6),
        ("pear", 300, 0.3),
        ("plum", 100, 0.1),
    ]
    assert [s.column for s in prof.leaks] == ["code"]
    assert prof.leak_scores["colour"] < 0.6 and prof.leak_scores["weight"] < 0.6


def test_imbalanced_target_and_missing_target_are_reported() -> None:
    rng = np.random.default_rng(2)
    y = np.array(["no"] * 980 + ["yes"] * 20, dtype=object)
    y[:5] = None
    frame = pd.DataFrame({"y": y, "x": rng.normal(size=1000)})
    prof = profile_frame(frame, infer_schema(frame, "y"))
    assert prof.balance is not None
    assert (prof.balance.labelled, prof.balance.missing) == (995, 5)
    assert prof.warnings == [
        "Target 'y' is missing in 5 rows: they are left out of training and evaluation.",
        "Target 'y' is imbalanced: class 'yes' is 2.0% of rows (20); prefer AUC/F1 over "
        "accuracy and check class weights.",
    ]


def test_regression_leak_and_distribution_summary() -> None:
    frame = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(3)
    frame["leak"] = frame["target"] + rng.normal(0, 2.0, len(frame))
    prof = profile_frame(frame, infer_schema(frame, "target"))
    assert prof.task == "regression"
    assert [s.column for s in prof.leaks] == ["leak"]
    assert prof.leaks[0].metric in ("r2", "spearman") and prof.leaks[0].score >= 0.98
    honest = {k: v for k, v in prof.leak_scores.items() if k != "leak"}
    assert len(honest) == 10 and max(honest.values()) < 0.7
    balance = prof.balance
    assert balance is not None and balance.classes == [] and balance.summary is not None
    target = frame["target"]
    assert balance.summary["mean"] == pytest.approx(target.mean())
    assert balance.summary["median"] == pytest.approx(target.median())
    assert balance.summary["p95"] == pytest.approx(target.quantile(0.95))
    assert (balance.summary["min"], balance.summary["max"]) == (25.0, 346.0)


def test_all_missing_id_like_high_cardinality_and_duplicate_rows() -> None:
    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:05d}" for i in rng.permutation(n)],
            "city": [f"city{i}" for i in rng.integers(0, 120, n)],
            "empty": [np.nan] * n,
            "amount": rng.normal(100, 10, n).round(2),
        }
    )
    frame = pd.concat([frame, frame.iloc[:7]], ignore_index=True)
    with pytest.warns(KeizokuWarning, match="Column 'empty' is missing in every row"):
        schema = infer_schema(frame)
    prof = profile_frame(frame, schema)
    flags = _flags(prof)
    assert flags == {
        "order_id": ["id-like"],
        "city": ["high-cardinality"],
        "empty": ["all-missing"],
        "amount": [],
    }
    assert prof.duplicate_rows == 7
    assert prof.balance is None and prof.leaks == [] and prof.leak_scores == {}
    assert prof.warnings[:2] == [
        "7 of 407 rows (1.7%) repeat an earlier row exactly: drop them "
        "(frame.drop_duplicates()) unless they are genuine repeats.",
        "Column 'order_id' looks like an identifier (400 distinct values in 407 rows), so it "
        "is not used as a feature; if it is a real feature, set 'role: feature' and a kind in "
        "schema.yaml.",
    ]
    assert "Column 'empty' is missing in all 407 rows: drop it (spec key data.drop)." in (
        prof.warnings
    )


def test_to_dict_is_json_and_rich_tables_render(cancer_profile: Profile) -> None:
    data = json.loads(json.dumps(cancer_profile.to_dict()))
    assert (data["rows"], data["n_columns"], data["target"]) == (569, 34, "target")
    assert data["balance"]["classes"][0] == {"label": 1, "count": 357, "share": 357 / 569}
    assert data["leaks"][0]["column"] == "leak"
    console = Console(record=True, width=200)
    tables = cancer_profile.rich_tables()
    for table in tables:
        console.print(table)
    assert [t.title for t in tables] == [
        "Summary",
        "Columns",
        "Target 'target' (binary)",
        "Leakage suspects",
        f"Strongest associations (15 of {len(cancer_profile.associations)} pairs, 569 rows)",
    ]
    text = console.export_text()
    assert "radius_copy" in text and "duplicate" in text and "leak-suspect" in text


def test_html_report_is_self_contained_with_one_chart_per_plotted_column(
    cancer: pd.DataFrame, tmp_path: Path
) -> None:
    cancer = cancer.assign(grade=np.where(cancer["mean radius"] > 15, "high", "low"))
    schema = infer_schema(cancer, "target")
    prof = profile_frame(cancer, schema)
    out = write_profile_html(prof, cancer, schema, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    for section in ("summary", "warnings", "target-balance", "leakage", "columns", "distributions"):
        assert f'<section id="{section}">' in html
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    charted = re.findall(r'<svg class="chart" data-column="([^"]+)"', html)
    # every numeric column gets a histogram, every categorical one (target, grade, constant)
    # a bar chart
    expected = [c for c in cancer.columns]
    assert sorted(charted) == sorted(expected) and len(svgs) == len(expected)
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed
        texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert texts[0].startswith(root.get("data-column", "?") + ": ")  # chart title
        assert "rows" in texts  # an axis label
    assert (
        "<script" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "https://" not in html
    )
    assert "Column &#39;leak&#39; predicts target" in html  # markupsafe's escape
    assert not list(tmp_path.glob(".report.html.tmp-*"))  # atomic write left no temp file


def test_schema_that_does_not_match_the_frame_is_refused(cancer: pd.DataFrame) -> None:
    schema = infer_schema(cancer[["mean radius", "target"]], "target")
    with pytest.raises(SchemaMismatchError) as err:
        profile_frame(cancer[["mean radius", "mean texture", "target"]], schema)
    assert err.value.message == (
        "The schema and the table differ: missing from the table [], not in the schema "
        "['mean texture']. Infer the schema from this table (infer_schema(frame, target)) or "
        "edit schema.yaml to match."
    )
    with pytest.raises(DataError) as empty:
        profile_frame(cancer.iloc[:0][["mean radius", "target"]], schema)
    assert empty.value.message == (
        "The table has no rows (columns: ['mean radius', 'target']): nothing to profile. "
        "Check the file or the SQL filter."
    )


@pytest.mark.shared
def test_titanic_profile_and_report(tmp_path: Path) -> None:
    path = need_shared("tabular/titanic-train.csv")
    from keizoku.data.ingest import read_table

    frame = read_table(path)
    schema = infer_schema(frame, "Survived")
    prof = profile_frame(frame, schema)
    assert (prof.rows, prof.n_columns, prof.duplicate_rows) == (891, 12, 0)
    assert prof.balance is not None
    assert [(c.label, c.count) for c in prof.balance.classes] == [(0, 549), (1, 342)]
    assert prof.leaks == []
    flags = _flags(prof)
    assert "id-like" in flags["PassengerId"] and "high-missing" in flags["Cabin"]
    assert prof.column("Age").missing_share == pytest.approx(177 / 891)
    assert prof.column("Sex").top[0].value == "male" and prof.column("Sex").top[0].count == 577
    out = write_profile_html(prof, frame, schema, tmp_path / "titanic.html")
    charted = re.findall(r'data-column="([^"]+)"', out.read_text(encoding="utf-8"))
    assert sorted(charted) == sorted(
        ["Survived", "Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    )


def test_date_column_that_encodes_the_target_is_flagged() -> None:
    rng = np.random.default_rng(5)
    days = pd.Series(pd.date_range("2020-01-01", periods=600, freq="D")).sample(
        frac=1, random_state=0
    )
    late = days > pd.Timestamp("2020-09-01")
    frame = pd.DataFrame(
        {
            "when": days.dt.strftime("%Y-%m-%d").where(rng.random(600) > 0.05).to_numpy(),
            "status": np.where(late, "late", "early"),
            "noise": rng.normal(size=600),
        }
    )
    schema = infer_schema(frame, "status")
    assert schema.column("when").kind == "datetime"
    prof = profile_frame(frame, schema)
    assert [s.column for s in prof.leaks] == ["when"]
    assert prof.leak_scores["noise"] < 0.7


def test_column_summary_labels_numbers_one_way() -> None:
    """min, mean and max read alike: thousands separated, never in scientific notation."""
    frame = pd.DataFrame({"mass": [2700.0, 4201.5, 5702.75, 123456.7], "y": [0, 1, 0, 1]})
    prof = profile_frame(frame, infer_schema(frame, target="y"))
    (mass,) = [c for c in prof.columns if c.name == "mass"]
    assert mass.summary == "min 2,700 · mean 34,015 · max 123,457"
