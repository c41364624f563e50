"""Models trained once per test run (short budgets) and shared by the evaluation and
reporting tests, all in one home:

- ``binary``: breast cancer + a random, independent sensitive column ``site`` (fair);
- ``multiclass``: wine;
- ``regression``: diabetes;
- ``biased``: generated data where group B's positive labels were flipped to negative;
  the model never sees ``group`` but learns it through the proxy ``region``. It is a
  single LightGBM model (no ensemble) so its row explanations are tree SHAP;
- ``hostile`` (tests/reporting): ``biased``'s kind of data with a feature, a category and
  a sensitive group spelled as a script tag.

The first process to ask trains them all into one home (``kzsupport.built_once``); each
process then works on its own copy (``kzsupport.relocated_copy``), made once whichever
folder asks first: tests/reporting re-exports these fixtures, and a fixture of each folder
used to train the same three models again in the same process, and every worker again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from keizoku.lifecycle.retrain import train_gated
from keizoku.project import init_project
from keizoku.spec import DataSpec
from kzsupport import built_once, relocated_copy


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
    return _models_here(tmp_path_factory) / "home"


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


HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def cancer_frame() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame["site"] = np.random.default_rng(1).choice(["east", "west"], len(frame))
    return frame


def wine_frame() -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return frame


def diabetes_frame() -> pd.DataFrame:
    return load_diabetes(as_frame=True, scaled=False).frame


def hostile_frame() -> pd.DataFrame:
    """``x1`` is renamed HOSTILE, one ``region`` level and one sensitive group are HOSTILE."""
    frame = biased_frame(n=600, seed=3).rename(columns={"x1": HOSTILE})
    frame["region"] = np.where(frame["region"] == "north", HOSTILE, frame["region"])
    frame["group"] = np.where(frame["group"] == "B", HOSTILE, frame["group"])
    return frame


@dataclass(frozen=True)
class Model:
    """How one shared model is trained: project name, data, target and overrides."""

    name: str
    frame: Callable[[], pd.DataFrame]
    target: str
    sensitive: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


LIGHTGBM_ONLY = {"models": ["lightgbm"], "ensemble": False}
MODELS = {
    "binary": Model("ev-cancer", cancer_frame, "target", sensitive=["site"]),
    "multiclass": Model("ev-wine", wine_frame, "target"),
    "regression": Model("ev-diabetes", diabetes_frame, "target"),
    "biased": Model("ev-biased", biased_frame, "label", ["group"], LIGHTGBM_ONLY),
    "hostile": Model("ev-hostile", hostile_frame, "label", ["group"], LIGHTGBM_ONLY),
}


def _train_all(root: Path) -> None:
    """``built_once``: every model of MODELS into ``root / "home"``, each project in
    ``root / KEY``; their versions in ``root / "versions.json"``."""
    versions = {}
    for key, model in MODELS.items():
        trained = train_frame(root / key, model.frame(), model.target, model.name,
                              sensitive=model.sensitive, overrides=model.overrides,
                              home=root / "home")  # fmt: skip
        versions[key] = trained.version
    (root / "versions.json").write_text(json.dumps(versions))


_copies: list[Path] = []  # this process's copy, shared by the fixtures of both folders


def _models_here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _copies:
        template = built_once("evaluation-models", _train_all)
        _copies.append(relocated_copy(template, tmp_path_factory.mktemp("evaluation")))
    return _copies[0]


def trained(key: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """MODELS[key] as this process's copy holds it."""
    root, model = _models_here(tmp_path_factory), MODELS[key]
    version = json.loads((root / "versions.json").read_text())[key]
    folder = root / key
    return Trained(model.name, version, folder, folder / f"{model.name}.csv", model.frame(),
                   model.target)  # fmt: skip


def shared_model(key: str) -> Any:
    """A session fixture named ``key``: MODELS[key] (``trained``)."""

    @pytest.fixture(scope="session", name=key)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Trained:
        return trained(key, tmp_path_factory)

    return fixture


binary = shared_model("binary")
multiclass = shared_model("multiclass")
regression = shared_model("regression")
biased = shared_model("biased")
