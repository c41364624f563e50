"""`keizoku train --exclude-family F[,F]`: the way around a family `keizoku export` cannot
convert. The search never tries an excluded family (library and the real executable), a
name that is no family is refused naming it, and the export error names the flag."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from export_support import Models
from keizoku.data.schema import infer_schema
from keizoku.errors import UserInputError
from keizoku.export.graph import check_families
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.search import run_search
from kzsupport import KEIZOKU_EXE, REPO, CliResult

PENGUINS = REPO / "examples" / "data" / "penguins.csv"


def search(zoo: Models, **spec: object) -> list[str]:
    """The families of the trials a small grid search ran."""
    frame = zoo.frame("binary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = TrainingData.build(frame, infer_schema(frame, "target"))
        cfg = TrainSpec(max_trials=4, folds=2, search="grid", ensemble=False, budget=600.0,
                        **spec)  # type: ignore[arg-type]  # fmt: skip
        return [t.family for t in run_search(data, cfg).trials]


def test_the_search_never_tries_an_excluded_family(models: Models) -> None:
    tried = search(models, preset="fast", exclude_models=["lightgbm", "linear"])
    assert tried and set(tried) == {"hist_gradient_boosting"}  # the fast preset's third family
    named = search(models, models=["linear", "knn"], exclude_models=["knn"])
    assert named and set(named) == {"linear"}  # an explicit --family list is filtered too


def test_an_unknown_or_everything_excluded_is_refused(models: Models) -> None:
    with pytest.raises(UserInputError, match="Unknown model family nosuch .*--exclude-family"):
        search(models, exclude_models=["nosuch"])
    with pytest.raises(UserInputError, match="leaves no model family"):
        search(models, models=["linear"], exclude_models=["linear"])


def test_the_export_error_names_the_flag(models: Models) -> None:
    fitted = models.fit("binary", "linear")
    member = replace(fitted.members[0], family="catboost")  # as a CatBoost member is named
    with pytest.raises(UserInputError, match="catboost .*keizoku train --exclude-family catboost"):
        check_families(replace(fitted, members=[member]))


def run(root: Path, *args: str) -> CliResult:
    env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(root / ".keizoku")}
    proc = subprocess.run([KEIZOKU_EXE, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    return CliResult(proc)


def test_keizoku_train_exclude_family_through_the_executable(tmp_path: Path) -> None:
    assert run(tmp_path, "init", str(PENGUINS), "--target", "species").code == 0
    bad = run(tmp_path, "train", "--max-trials", "1", "--exclude-family", "lightgbm,nosuch")
    assert bad.code == 2 and "nosuch" in bad.text and "--exclude-family" in bad.text
    done = run(tmp_path, "train", "--budget", "10m", "--max-trials", "3", "--preset", "fast",
               "--exclude-family", "lightgbm,hist_gradient_boosting", "--json")  # fmt: skip
    assert done.code == 0, done.text
    result = json.loads(done.out)
    assert result["trials"] == 3
    assert {row["model"] for row in result["leaderboard"]} == {"linear"}
    assert {m["family"] for m in result["best"]["members"]} == {"linear"}
