"""Fixtures of the Python API tests: one trained model per module, on shipped data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import keizoku

PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "data" / "penguins.csv"


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh KEIZOKU_HOME shared by the tests of one module (training is the slow part)."""
    home = tmp_path_factory.mktemp("home") / ".keizoku"
    before = os.environ.get("KEIZOKU_HOME")
    os.environ["KEIZOKU_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("KEIZOKU_HOME", None)
    else:
        os.environ["KEIZOKU_HOME"] = before


@pytest.fixture(scope="module")
def penguins() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows of the shipped penguins table."""
    df = pd.read_csv(PENGUINS)
    train = df.sample(frac=0.8, random_state=0)
    return train, df.drop(train.index)


@pytest.fixture(scope="module")
def trained(penguins: tuple[pd.DataFrame, pd.DataFrame], module_home: Path) -> keizoku.Predictor:
    train, _ = penguins
    return keizoku.train(
        train, target="species", budget="30s", max_trials=2, families=["linear"], folds=3
    )
