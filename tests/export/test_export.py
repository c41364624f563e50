"""ONNX export: every exportable family and an ensemble, proved equal through the bundle.

Each case is fitted by the training search (one family, one configuration), registered
in a real MLflow store, exported with ``export_onnx`` and scored through the bundle's own
runner (``runner.Bundle``): the parity check passed, and the runner's answers equal the
registered model's on the same JSON records, missing values and an integer-coded
categorical included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export_support import Models, need_onnx_extra
from keizoku.errors import UserInputError
from keizoku.export import TOLERANCE, export_onnx
from keizoku.export.runner import Bundle, RecordError
from keizoku.registry import get_version, load_model

need_onnx_extra()

FAMILIES = ("lightgbm", "xgboost", "hist_gradient_boosting", "random_forest", "extra_trees",
            "linear", "knn", "svm")  # fmt: skip
CASES = [("binary", f) for f in FAMILIES] + [
    ("multiclass", f) for f in ("lightgbm", "hist_gradient_boosting", "linear", "knn")
] + [("regression", f) for f in ("xgboost", "hist_gradient_boosting", "random_forest", "svm",
                                 "knn", "linear")]  # fmt: skip


def records(models: Models, task: str, n: int = 40) -> list[dict[str, Any]]:
    """The first ``n`` rows as a JSON client sends them (None for a missing value)."""
    frame = models.frame(task).drop(columns=["target"]).head(n)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if isinstance(value, np.generic) else value


def export(models: Models, ref: str, task: str, folder: Path) -> Bundle:
    result = export_onnx(ref, folder, models.frame(task))
    assert result.parity.passed and result.parity.max_abs_diff <= TOLERANCE
    assert result.parity.labels_equal == result.parity.rows == len(models.frame(task))
    return Bundle(folder)


@pytest.mark.parametrize(("task", "family"), CASES, ids=[f"{t}-{f}" for t, f in CASES])
def test_each_family_exports_and_the_bundle_scores_like_the_model(
    models: Models, task: str, family: str, tmp_path: Path
) -> None:
    ref = models.ref(task, family)
    bundle = export(models, ref, task, tmp_path / "bundle")
    model = load_model(ref)
    rows = records(models, task)
    assert any(r[c] is None for r in rows for c in r)  # missing values go through the graph
    np.testing.assert_allclose(bundle.raw(rows), model.predict_raw_records(rows),
                               atol=TOLERANCE, rtol=TOLERANCE)  # fmt: skip
    answers = bundle.predict(rows)
    assert [a["prediction"] for a in answers] == (
        model.predict_records(rows) if task != "regression" else
        pytest.approx(model.predict_records(rows), rel=TOLERANCE)
    )  # fmt: skip


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_weighted_ensemble_of_bags_with_temperature_is_one_graph(
    models: Models, task: str, tmp_path: Path
) -> None:
    ref = models.ensemble(task, ("linear", "hist_gradient_boosting"))
    model = load_model(ref)
    assert len(model.members) > 2 and len({id(m.encoder) for m in model.members}) == 2
    bundle = export(models, ref, task, tmp_path / "bundle")
    rows = records(models, task)
    np.testing.assert_allclose(bundle.raw(rows), model.predict_raw_records(rows),
                               atol=TOLERANCE, rtol=TOLERANCE)  # fmt: skip
    card = json.loads((tmp_path / "bundle" / "card.json").read_text())
    assert [m["family"] for m in card["members"]] == [m.family for m in model.members]


def test_records_are_validated_like_the_rest_api(models: Models, tmp_path: Path) -> None:
    ref = models.ref("binary", "lightgbm")
    bundle = export(models, ref, "binary", tmp_path / "bundle")
    model = load_model(ref)
    good = records(models, "binary", 1)[0]
    with pytest.raises(RecordError, match="field 'band' is required"):
        bundle.predict({k: v for k, v in good.items() if k != "band"})
    with pytest.raises(RecordError, match="field 'band' = 'huge': unseen"):
        bundle.predict({**good, "band": "huge"})
    with pytest.raises(RecordError, match="field 'mean radius' = '12': expected a number"):
        bundle.predict({**good, "mean radius": "12"})
    with pytest.raises(RecordError, match="unknown field 'colour'"):
        bundle.predict({**good, "colour": "red"})
    # allowed anyway: scored as the encoder scores an unknown category and a missing field
    odd = {**{k: v for k, v in good.items() if k != "mean texture"}, "band": "huge", "grade": 9}
    theirs = bundle.raw([odd], allow_unseen=True)
    np.testing.assert_allclose(theirs, model.predict_raw_records([odd]), atol=TOLERANCE)


def test_unexportable_family_is_named_with_the_way_around(models: Models, tmp_path: Path) -> None:
    pytest.importorskip("catboost", reason="CatBoost is an optional family (keizoku[catboost])")
    ref = models.ref("binary", "catboost")
    with pytest.raises(UserInputError, match="catboost .*--exclude-family catboost"):
        export_onnx(ref, tmp_path / "bundle", models.frame("binary"))
    assert not (tmp_path / "bundle").exists()


def test_the_export_is_recorded_with_the_version(models: Models, tmp_path: Path) -> None:
    ref = models.ref("binary", "linear")
    export(models, ref, "binary", tmp_path / "bundle")
    tags = get_version(ref).tags
    summary = json.loads(tags["keizoku.export.onnx"])
    assert summary["verified"] and summary["rows"] == len(models.frame("binary"))
    manifest = tmp_path / "bundle" / "manifest.json"
    import hashlib

    assert summary["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    files = json.loads(manifest.read_text())["files"]
    assert set(files) == {"model.onnx", "schema.json", "labels.json", "card.json",
                          "parity.json", "runner.py"}  # fmt: skip


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_int8_quantization_reports_the_change_and_is_recorded(
    models: Models, task: str, tmp_path: Path
) -> None:
    import onnx

    ref = models.ref(task, "linear")
    result = export_onnx(ref, tmp_path / "q", models.frame(task), quantize="int8")
    p = result.parity
    assert p.quantize == "int8" and p.passed and p.agreement >= 0.99
    assert 0 < p.max_abs_diff < 0.1  # int8 weights change the outputs, a little
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    assert json.loads(get_version(ref).tags["keizoku.export.onnx"])["quantize"] == "int8"
    rows = records(models, task)
    quantized = Bundle(tmp_path / "q").raw(rows)
    np.testing.assert_allclose(
        quantized, load_model(ref).predict_raw_records(rows), rtol=0.01, atol=0.1
    )


def _library_conversion(estimator: Any, single: bool) -> Any:
    """``convert_estimator``'s call to skl2onnx, by skl2onnx's own path (options walked)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    from keizoku.export.graph import OPSET, _missing_directions

    kind = FloatTensorType if single else DoubleTensorType
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else {}
    proto = convert_sklearn(estimator, initial_types=[("X", kind([None, 4]))],
                            options=options, target_opset=dict(OPSET))  # fmt: skip
    if hasattr(estimator, "estimators_"):
        _missing_directions(proto, estimator.estimators_)
    return proto


@pytest.mark.parametrize("kind", ["forest classifier", "forest regressor", "pipeline"])
def test_a_conversion_without_the_options_walk_is_the_librarys(kind: str) -> None:
    """``convert_estimator`` passes its options to skl2onnx as given (the library's walk of
    every tree's attributes only matters to a Pipeline): the same graph, bit for bit but
    for the graph's random name, and the library's function is put back after."""
    import skl2onnx._parse
    import skl2onnx.convert
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from keizoku.export.graph import convert_estimator

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.integers(0, 3, len(X))
    estimator: Any = {
        "forest classifier": RandomForestClassifier(n_estimators=5, random_state=0),
        "forest regressor": RandomForestRegressor(n_estimators=5, random_state=0),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression()),
    }[kind]
    estimator.fit(np.nan_to_num(X) if kind == "pipeline" else X, y)
    walk = skl2onnx.convert._process_options
    single = kind != "pipeline"
    ours, theirs = (
        convert_estimator(estimator, 4, single=single),
        _library_conversion(estimator, single),
    )
    assert skl2onnx.convert._process_options is walk is skl2onnx._parse._process_options
    assert ours.graph.name != theirs.graph.name  # a uuid per conversion
    ours.graph.name = theirs.graph.name = ""
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert "ZipMap" not in {n.op_type for n in ours.graph.node}
