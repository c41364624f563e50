"""Models trained once per session (short budgets) and shared by the evaluation tests.

- ``binary``: breast cancer + a random, independent sensitive column ``site`` (fair);
- ``multiclass``: wine;
- ``regression``: diabetes;
- ``biased``: generated data where group B's positive labels were flipped to negative;
  the model never sees ``group`` but learns it through the proxy ``region``. It is a
  single LightGBM model (no ensemble) so its row explanations are tree SHAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from keizoku.lifecycle.retrain import train_gated
from keizoku.project import init_project
from keizoku.spec import DataSpec

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Trained:
    name: str
    version: int
    folder: Path
    csv: Path
    frame: pd.DataFrame
    target: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def spec(self) -> Path:
        return self.folder / "keizoku.yaml"


@pytest.fixture(scope="session")
def eval_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home of the session's models: set for each test here (``_use_eval_home``) and
    while a model is trained, never for the tests after these in the same process."""
    return tmp_path_factory.mktemp("evaluation-home")


@pytest.fixture(autouse=True)
def _use_eval_home(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEIZOKU_HOME", str(eval_home))


def train_frame(
    folder: Path,
    frame: pd.DataFrame,
    target: str,
    name: str,
    *,
    sensitive: list[str] | None = None,
    overrides: dict[str, object] | None = None,
    home: Path | None = None,
) -> Trained:
    """Train ``frame`` as project ``name`` in ``folder``, into ``home`` when given (else the
    current ``KEIZOKU_HOME``)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    spec = folder / "keizoku.yaml"
    init_project(str(csv), target, read=DataSpec(), name=name, sensitive=sensitive, spec_path=spec)
    settings = {
        "budget": "60s",  # an upper bound: max_trials ends the search
        "preset": "fast",
        "max_trials": 4,
        "models": ["lightgbm", "linear"],
        **(overrides or {}),
    }
    with pytest.MonkeyPatch.context() as mp:
        if home is not None:
            mp.setenv("KEIZOKU_HOME", str(home))
        outcome, _ = train_gated(spec, overrides=settings)
    return Trained(name, outcome.version, folder, csv, frame, target)


def biased_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Group B's positive labels are flipped to negative; ``region`` is a 95 % proxy of group."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n)
    region = np.where(rng.random(n) < 0.95, np.where(group == "A", "north", "south"), "other")
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = (x1 + 0.5 * x2 + rng.normal(scale=0.3, size=n) > 0).astype(int)
    label = np.where(group == "B", 0, label)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": region, "group": group, "label": label})


@pytest.fixture(scope="session")
def binary(eval_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = load_breast_cancer(as_frame=True).frame
    frame["site"] = np.random.default_rng(1).choice(["east", "west"], len(frame))
    return train_frame(
        tmp_path_factory.mktemp("binary"),
        frame,
        "target",
        "ev-cancer",
        sensitive=["site"],
        home=eval_home,
    )


@pytest.fixture(scope="session")
def multiclass(eval_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return train_frame(
        tmp_path_factory.mktemp("multiclass"), frame, "target", "ev-wine", home=eval_home
    )


@pytest.fixture(scope="session")
def regression(eval_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return train_frame(
        tmp_path_factory.mktemp("regression"), frame, "target", "ev-diabetes", home=eval_home
    )


@pytest.fixture(scope="session")
def biased(eval_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_frame(
        tmp_path_factory.mktemp("biased"),
        biased_frame(),
        "label",
        "ev-biased",
        sensitive=["group"],
        overrides={"models": ["lightgbm"], "ensemble": False},
        home=eval_home,
    )
