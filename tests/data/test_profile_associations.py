"""The profile beyond single columns: associations, gaps that come together, zero-inflated
columns and numeric codes that look like missing, in the terminal, --json and HTML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from keizoku.data.profile import (
    Profile,
    correlation_ratio,
    cramers_v,
    profile_frame,
    write_profile_html,
)
from keizoku.data.schema import infer_schema
from kzsupport import need_shared

N = 2000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=N)
    glucose = np.clip(rng.normal(120, 30, N), 44, 199).round()
    glucose[rng.random(N) < 0.01] = 0  # pima's zeros: far below every real value
    pressure = rng.normal(70, 10, N)
    pressure[rng.random(N) < 0.02] = -999  # a sentinel
    spend = np.where(rng.random(N) < 0.5, 0.0, rng.exponential(20, N))  # zero is real
    level = np.where(x > 0, "high", "low")
    gap = rng.random(N) < 0.1
    return pd.DataFrame({
        "x": x,
        "x2": 2 * x + rng.normal(scale=0.1, size=N),  # nearly redundant with x
        "pregnancies": rng.poisson(3, N).astype(float),  # a count: 0 is a value
        "glucose": glucose,
        "pressure": pressure,
        "spend": spend,
        "level": level,
        "level_fr": np.where(level == "high", "haut", "bas"),  # the same split, renamed
        "noise": rng.choice(list("abc"), N),
        "lab_a": np.where(gap, np.nan, rng.normal(size=N)),  # one missed lab visit:
        "lab_b": np.where(gap, np.nan, rng.normal(size=N)),  # both values missing
        "y": (x + rng.normal(size=N) > 0).astype(int),
    })  # fmt: skip


@pytest.fixture(scope="module")
def prof(frame: pd.DataFrame) -> Profile:
    return profile_frame(frame, infer_schema(frame, "y"))


def test_codes_that_look_like_missing_and_zero_inflation(prof: Profile) -> None:
    flags = {c.name: c.flags for c in prof.columns}
    assert flags["glucose"] == ["missing-code"] and prof.column("glucose").missing_code == 0
    assert flags["pressure"] == ["missing-code"] and prof.column("pressure").missing_code == -999
    assert flags["pregnancies"] == []  # 0 pregnancies is one step below 1: a value
    assert flags["spend"] == ["zero-inflated"]  # half zeros, the rest starting near 0
    spend = prof.column("spend").stats
    assert spend is not None
    assert spend["zeros"] == pytest.approx(0.5, abs=0.03)
    text = "\n".join(prof.warnings)
    assert "Column 'glucose' holds 0, far from every other value" in text
    assert "Column 'pressure' holds -999" in text
    assert "Column 'spend' is zero in 5" in text and "zero-inflated" in text
    assert "pregnancies" not in text


def test_associations_by_kind_of_pair(frame: pd.DataFrame, prof: Profile) -> None:
    found = {(a.a, a.b, a.measure): a.value for a in prof.associations}
    assert prof.association_rows == N
    assert found[("x", "x2", "pearson")] == pytest.approx(np.corrcoef(frame.x, frame.x2)[0, 1])
    assert found[("x", "x2", "spearman")] > 0.99
    assert found[("level", "level_fr", "cramers_v")] == pytest.approx(1.0, abs=1e-3)
    assert found[("level", "noise", "cramers_v")] < 0.05
    # η of x by the level it determines: the between-group share of x's spread
    means = frame.groupby("level")["x"].transform("mean")
    eta = np.sqrt(((means - frame.x.mean()) ** 2).sum() / ((frame.x - frame.x.mean()) ** 2).sum())
    assert found[("level", "x", "correlation_ratio")] == pytest.approx(eta)
    values = [abs(a.value) for a in prof.associations]
    assert values == sorted(values, reverse=True)  # strongest first
    text = "\n".join(prof.warnings)
    assert "Columns 'x' and 'x2' are almost redundant (Pearson r 0.99" in text
    assert "Columns 'level' and 'level_fr' are almost redundant (Cramér's V 1.000)" in text


def test_the_measures_against_known_answers() -> None:
    a = np.array([0, 0, 1, 1] * 50)
    assert cramers_v(a, a) == pytest.approx(1.0, abs=0.01)
    assert cramers_v(a, np.array([0, 1] * 100)) == 0.0  # independent by construction
    assert correlation_ratio(a, a.astype(float) * 3 + 1) == pytest.approx(1.0)
    assert correlation_ratio(a, np.tile([1.0, 2.0], 100)) == pytest.approx(0.0)


def test_gaps_that_come_together(prof: Profile) -> None:
    (pair,) = prof.missing_together
    assert (pair.a, pair.b, pair.correlation) == ("lab_a", "lab_b", pytest.approx(1.0))
    assert pair.both == pair.either > 150
    assert any(w.startswith("Columns 'lab_a', 'lab_b' are missing together") for w in prof.warnings)


def test_terminal_json_and_html_show_them(
    frame: pd.DataFrame, prof: Profile, tmp_path: Path
) -> None:
    console = Console(width=200, record=True)
    for table in prof.rich_tables():
        console.print(table)
    text = console.export_text()
    assert "Strongest associations" in text and "Missing together" in text
    assert "min 44 · mean" in text or "min 0 · mean" in text  # labelled min/mean/max
    data = json.loads(json.dumps(prof.to_dict()))
    assert {"a", "b", "measure", "value"} <= set(data["associations"][0])
    assert data["missing_together"][0]["a"] == "lab_a"
    assert data["columns"][3]["missing_code"] == 0 and data["columns"][3]["stats"]["zeros"] > 0
    out = write_profile_html(prof, frame, infer_schema(frame, "y"), tmp_path / "p.html")
    html = out.read_text(encoding="utf-8")
    section = html.split('<section id="associations">')[1].split("</section>")[0]
    assert "Cramér" in section and "<td>lab_a</td><td>lab_b</td>" in section


def test_pima_zeros_are_flagged_in_exactly_the_five_columns_where_they_mean_missing() -> None:
    path = need_shared("tabular/pima-indians-diabetes.csv")
    names = ["pregnancies", "glucose", "pressure", "skin", "insulin", "bmi", "pedigree",
             "age", "diabetic"]  # fmt: skip
    pima = pd.read_csv(path, header=None, names=names)
    prof = profile_frame(pima, infer_schema(pima, "diabetic"))
    flags = {c.name: c.flags for c in prof.columns if c.flags}
    # insulin's zeros (49 % of rows, the smallest real value 14) read as zero-inflation,
    # whose warning asks the same question; pregnancies' zeros are real and not flagged
    assert flags == {"glucose": ["missing-code"], "pressure": ["missing-code"],
                     "skin": ["missing-code"], "insulin": ["zero-inflated"],
                     "bmi": ["missing-code"]}  # fmt: skip
