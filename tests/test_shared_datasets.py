"""The shared data sets' quirks, trained as a user would (skipped outside the workplace)."""

from __future__ import annotations

import pandas as pd
import pytest

from kzsupport import need_shared

pytestmark = pytest.mark.shared
# Two finished trials, not a wall-clock budget (the budget is only an upper bound): the
# quirks tested here are in the data, and the same search runs on a fast or loaded machine.
TWO_TRIALS = ("--budget", "120s", "--max-trials", "2")


def test_titanic_end_to_end(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = need_shared("tabular/titanic-train.csv")
    assert cli("init", str(data), "--target", "Survived").code == 0
    train = cli("train", *TWO_TRIALS)
    assert train.code == 0, train.text
    assert "Registered titanic-train:1 as champion" in train.text
    out = cli("predict", "--model", "titanic-train@champion", str(data), "-o", "p.csv")
    assert out.code == 0, out.text
    assert len(pd.read_csv(tmp_path / "p.csv")) == 891


def test_headerless_abalone_regression(cli) -> None:  # type: ignore[no-untyped-def]
    data = need_shared("tabular/abalone.csv")
    init = cli("init", str(data), "--no-header", "--target", "col8", "--task", "regression")
    assert init.code == 0, init.text
    train = cli("train", *TWO_TRIALS, "--preset", "fast")
    assert train.code == 0, train.text
    assert "Leaderboard (CV rmse)" in train.text


def test_hypothyroid_tiny_class_and_empty_column(cli) -> None:  # type: ignore[no-untyped-def]
    data = need_shared("tabular/hypothyroid.csv")
    init = cli("init", str(data), "--target", "Class")
    assert init.code == 0, init.text
    assert "Column 'TBG' is missing in every row; it is ignored." in init.text
    train = cli("train", *TWO_TRIALS, "--preset", "fast")
    assert train.code == 0, train.text
    assert "'secondary_hypothyroid' (2 rows) have fewer rows than the 3 folds" in train.text


def test_bank_45k_rows(cli) -> None:  # type: ignore[no-untyped-def]
    data = need_shared("tabular/bank.csv")
    assert cli("init", str(data), "--target", "deposit").code == 0
    # The quirk is the size: one trial (the fast preset's first, LightGBM) trains, refits,
    # explains and registers on all 45k rows. A second trial (HistGradientBoosting, then an
    # ensemble refit) tripled the CPU and tests nothing about the rows' count.
    train = cli("train", "--budget", "120s", "--max-trials", "1", "--preset", "fast")
    assert train.code == 0, train.text
    assert "Registered bank:1 as champion" in train.text
