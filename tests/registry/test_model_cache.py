"""The loaded-model cache is keyed by store, not by name alone: one process that works on
two homes (a notebook, a test suite) gets each home's own model for the same name."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from keizoku.lifecycle.retrain import train_gated
from keizoku.project import init_project
from keizoku.registry.models import load_model
from keizoku.spec import DataSpec


def _train(root: Path, family: str) -> None:
    load_breast_cancer(as_frame=True).frame.head(200).to_csv(root / "cancer.csv", index=False)
    spec = root / "keizoku.yaml"
    init_project(str(root / "cancer.csv"), "target", read=DataSpec(), spec_path=spec)
    overrides = {"budget": "60s", "max_trials": 1, "models": [family]}
    train_gated(spec, overrides=overrides)


def test_two_homes_with_one_model_name_load_their_own_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    families = {}
    for family in ("linear", "knn"):
        root = tmp_path / family
        root.mkdir()
        monkeypatch.setenv("KEIZOKU_HOME", str(root / ".keizoku"))
        _train(root, family)
        families[family] = {m.family for m in load_model("cancer@champion").members}
    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path / "linear" / ".keizoku"))
    again = {m.family for m in load_model("cancer@champion").members}
    assert families == {"linear": {"linear"}, "knn": {"knn"}}
    assert again == {"linear"}
