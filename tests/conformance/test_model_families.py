"""Every model family, and an ensemble, through the same checks, for every task it fits.

Each case is fitted by the training search (``run_search``, one family, ``max_trials=1``:
deterministic), registered through a tracking run, and loaded back through
``registry.load_model``. The same generated checks then run on each: the loaded model is
a ``ServableModel`` that scores exactly as the fitted one did; probabilities are a
distribution over the label codec's classes; a record with a missing feature or an
unseen category is refused by the record validator and, when the caller allows it,
scored; the model file's sha256 is recorded, and a tampered file is refused.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from keizoku.data.labels import LabelCodec
from keizoku.data.schema import Schema, infer_schema
from keizoku.data.validate import RecordValidator, check_records
from keizoku.errors import IntegrityError, ValidationError
from keizoku.registry import ServableModel, get_version, load_model
from keizoku.registry import models as registry
from keizoku.registry.tracking import TrainingRun
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.model import KeizokuModel
from keizoku.training.search import run_search
from keizoku.training.zoo import FAMILIES

TASKS = ("binary", "multiclass", "regression")
OPTIONAL = {"lightgbm": "lightgbm", "xgboost": "xgboost"}  # family → the library it needs
ENSEMBLE = ("linear", "hist_gradient_boosting")  # two members of different kinds
# Fewer trees than the defaults: the checks are about contracts, not accuracy.
SMALL = {f: {"n_estimators": 20} for f in FAMILIES if "n_estimators" in FAMILIES[f].defaults}
SMALL.update({f: {"n_estimators": 30} for f, fam in FAMILIES.items() if fam.boosting})
SMALL["hist_gradient_boosting"] = {"n_estimators": 30}
CASES = [(task, family) for task in TASKS for family in [*FAMILIES, "ensemble"]]
ROWS = 150  # small on purpose: the suite checks contracts, not accuracy


def _with_band(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` plus a categorical feature ``band`` (terciles of ``source``)."""
    out = frame.copy()
    out["band"] = pd.qcut(out[source], 3, labels=["low", "mid", "high"]).astype(str)
    return out


def task_frame(task: str) -> pd.DataFrame:
    """Shipped scikit-learn data, cut small: labels as text for classification."""
    if task == "binary":
        data = load_breast_cancer(as_frame=True)
        frame = data.frame.iloc[:, [0, 1, 4, 7, 30]].sample(ROWS, random_state=0)
        frame["target"] = [str(data.target_names[i]) for i in frame["target"]]
        return _with_band(frame.reset_index(drop=True), "mean radius")
    if task == "multiclass":
        data = load_iris(as_frame=True)
        frame = data.frame.copy()
        frame["target"] = [str(data.target_names[i]) for i in frame["target"]]
        return _with_band(
            frame.sample(frac=1.0, random_state=0).reset_index(drop=True), "sepal length (cm)"
        )
    frame = load_diabetes(as_frame=True).frame.iloc[:ROWS, [0, 2, 3, 8, 10]]
    return _with_band(frame.reset_index(drop=True), "bmi")


@dataclass
class Case:
    task: str
    family: str
    name: str
    version: int
    fitted: KeizokuModel  # the object the search returned, before it was saved
    frame: pd.DataFrame  # feature columns only
    loaded: ServableModel | None = None  # read back from the store once, by _loaded


class Bench:
    """Fits and registers each (task, family) once per module, on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.frames = {task: task_frame(task) for task in TASKS}
        self.schemas: dict[str, Schema] = {}
        self.cases: dict[tuple[str, str], Case] = {}

    def schema(self, task: str) -> Schema:
        if task not in self.schemas:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.schemas[task] = infer_schema(self.frames[task], "target")
        return self.schemas[task]

    def case(self, task: str, family: str) -> Case:
        key = (task, family)
        if key not in self.cases:
            model = self._ensemble(task) if family == "ensemble" else self._fit(task, family)
            self.cases[key] = self._register(task, family, model)
        return self.cases[key]

    def _fit(self, task: str, family: str) -> KeizokuModel:
        need = OPTIONAL.get(family)
        if need is not None and importlib.util.find_spec(need) is None:
            pytest.skip(f"family '{family}' needs the optional library '{need}', not installed")
        # grid search tries the warm start first, then the family's defaults: with
        # max_trials=1 exactly one configuration is fitted, the same one every run.
        cfg = TrainSpec(
            models=[family], max_trials=1, folds=2, search="grid", ensemble=False, budget=600.0
        )
        first = [{"family": family, "params": SMALL.get(family, {})}]
        data = TrainingData.build(self.frames[task], self.schema(task))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_search(data, cfg, warm_start=first)
        assert [t.family for t in result.trials] == [family]
        return result.model

    def _ensemble(self, task: str) -> KeizokuModel:
        """Two models the search fitted, weighted 2:1, as ``run_search`` builds an ensemble.

        Each may be a bag of fold models (the default preset): its members share its weight.
        """
        first, second = (self.case(task, f).fitted for f in ENSEMBLE)
        assert first.temperature == second.temperature == 1.0
        members = [replace(m, weight=2.0 / len(first.members)) for m in first.members] + [
            replace(m, weight=1.0 / len(second.members)) for m in second.members
        ]
        return KeizokuModel(
            schema=first.schema, task=task, members=members, classes=first.classes,
            metric=first.metric,
        )  # fmt: skip

    def _register(self, task: str, family: str, model: KeizokuModel) -> Case:
        name = f"conf-{task}"
        schema_file = self.root / f"{task}-{family}-schema.yaml"
        model.schema.save(schema_file)
        with TrainingRun(name) as run:
            version = run.register(model, {"schema": schema_file}, {"keizoku.family": family})
        features = [c.name for c in model.schema.features]
        return Case(task, family, name, version, model, self.frames[task][features])


@pytest.fixture(scope="module")
def bench(registry_home: Path) -> Bench:
    return Bench(registry_home.parent)


@pytest.fixture(params=CASES, ids=[f"{t}-{f}" for t, f in CASES])
def case(request: pytest.FixtureRequest, bench: Bench) -> Case:
    task, family = request.param
    return bench.case(task, family)


def _loaded(case: Case) -> ServableModel:
    """The case's model as ``load_model`` reads it back from the store (once per case)."""
    if case.loaded is None:
        registry._cache.clear()  # from the file in the store, not this process's copy
        case.loaded = load_model(f"{case.name}:{case.version}")
    return case.loaded


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in frame.to_dict(orient="records")]  # fmt: skip


def test_the_loaded_model_scores_exactly_as_the_fitted_one(case: Case) -> None:
    loaded = _loaded(case)
    assert isinstance(loaded, ServableModel) and loaded is not case.fitted
    assert [m.family for m in loaded.members] == [m.family for m in case.fitted.members]
    frame = case.frame.head(40)
    before, after = case.fitted.predict_raw(frame), loaded.predict_raw(frame)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(loaded.predict_raw_records(_records(frame)), before)
    assert loaded.predict(frame) == case.fitted.predict(frame)
    scored = loaded.score_frame(frame)
    assert list(scored["prediction"]) == loaded.labels(before)


def test_outputs_fit_the_task_and_the_label_codec(case: Case, bench: Bench) -> None:
    loaded = _loaded(case)
    raw = loaded.predict_raw(case.frame)
    target = bench.frames[case.task]["target"]
    if case.task == "regression":
        assert loaded.classes is None and raw.shape == (len(case.frame),)
        assert np.isfinite(raw).all()
        return
    codec = LabelCodec.from_schema(loaded.schema)
    assert loaded.classes == codec.classes == sorted(set(target))
    assert raw.shape == (len(case.frame), len(codec.classes or []))
    assert (raw >= 0).all() and (raw <= 1).all()
    np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=1e-9)
    labels = loaded.labels(raw)
    assert set(labels) <= set(codec.classes or [])
    assert [codec.classes.index(x) for x in labels] == list(raw.argmax(axis=1))  # type: ignore[union-attr]


def test_a_missing_feature_and_an_unseen_category_follow_the_validator_policy(
    case: Case,
) -> None:
    loaded = _loaded(case)
    record = _records(case.frame.head(1))[0]
    dropped = next(c for c in loaded.feature_names if c != "band")
    del record[dropped]
    record["band"] = "enormous"
    validator = RecordValidator(loaded.schema)
    with pytest.raises(ValidationError) as refused:
        check_records(validator, [record], single=True)
    kinds = {(e["field"], e["kind"]) for e in refused.value.details}
    assert kinds == {(dropped, "missing"), ("band", "unseen")}
    allowed = check_records(validator, [record], single=True, allow_unseen=True)
    assert allowed.counts == {"missing": 1, "unseen": 1}
    raw = np.atleast_1d(loaded.predict_raw_records([record])[0])
    assert np.isfinite(raw).all()
    if case.task != "regression":
        assert raw.sum() == pytest.approx(1.0)
        assert loaded.labels(raw[None, :])[0] in (loaded.classes or [])


def test_the_hash_is_recorded_and_a_tampered_file_is_refused(case: Case) -> None:
    info = get_version(f"{case.name}:{case.version}")
    assert info.tags["keizoku.family"] == case.family
    path = registry.version_artifact(f"{case.name}:{case.version}", registry.MODEL_FILE)
    assert info.tags[registry.TAG_SHA] == registry.sha256_file(str(path))
    assert (
        registry.recorded_artifacts(info.tags)[registry.MODEL_FILE] == info.tags[registry.TAG_SHA]
    )
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        registry._cache.clear()
        with pytest.raises(IntegrityError, match="was modified after registration"):
            load_model(f"{case.name}:{case.version}")
        with pytest.raises(IntegrityError, match="was modified after registration"):
            registry.verify_version(case.name, case.version)
    finally:
        path.write_bytes(original)
    registry.verify_version(case.name, case.version)


@pytest.mark.parametrize("task", TASKS)
def test_an_ensemble_scores_the_weighted_mean_of_its_members(task: str, bench: Bench) -> None:
    """A known answer: the loaded ensemble is the 2:1 mix of the loaded single models."""
    ensemble = _loaded(bench.case(task, "ensemble"))
    first, second = (_loaded(bench.case(task, f)) for f in ENSEMBLE)
    frame = bench.case(task, "ensemble").frame.head(30)
    expected = (2 * first.predict_raw(frame) + second.predict_raw(frame)) / 3
    np.testing.assert_allclose(ensemble.predict_raw(frame), expected, rtol=1e-12, atol=1e-12)
