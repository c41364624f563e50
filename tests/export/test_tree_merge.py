"""Tree ensembles in one tree node: the members' trees share one ``TreeEnsembleRegressor``
(one per input precision), their links and the weighted mean applied to all at once, and
the bundle still scores exactly like the registered model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export_support import Models, need_onnx_extra
from keizoku.export import TOLERANCE, export_onnx
from keizoku.export.runner import Bundle
from keizoku.registry import load_model

need_onnx_extra()


@pytest.fixture(scope="module")
def models(registry_home: Path) -> Models:
    return Models(registry_home.parent, prefix="merge")


# (task, the two families, how many tree nodes the graph must have: one per precision)
CASES = [
    ("binary", ("lightgbm", "xgboost"), 1),  # both logistic, float32
    ("binary", ("random_forest", "lightgbm"), 1),  # probabilities beside log-odds
    ("binary", ("extra_trees", "hist_gradient_boosting"), 2),  # float32 and float64
    ("multiclass", ("lightgbm", "random_forest"), 1),  # softmax beside probabilities
    ("multiclass", ("xgboost", "hist_gradient_boosting"), 2),
    ("regression", ("xgboost", "random_forest"), 1),
    ("regression", ("lightgbm", "hist_gradient_boosting"), 2),
]


def tree_nodes(folder: Path) -> list[str]:
    graph = onnx.load(str(folder / "model.onnx")).graph
    return [n.op_type for n in graph.node if n.op_type.startswith("TreeEnsemble")]


@pytest.mark.parametrize(("task", "families", "nodes"), CASES,
                         ids=[f"{t}-{'+'.join(f)}" for t, f, _ in CASES])  # fmt: skip
def test_tree_members_share_one_node_per_precision_and_keep_parity(
    models: Models, task: str, families: tuple[str, str], nodes: int, tmp_path: Path
) -> None:
    ref = models.ensemble(task, families)
    model = load_model(ref)
    assert len(model.members) >= 3  # bags of folds: several members of each family
    frame = models.frame(task)
    result = export_onnx(ref, tmp_path / "bundle", frame)
    assert result.parity.passed and result.parity.labels_equal == len(frame)
    assert tree_nodes(tmp_path / "bundle") == ["TreeEnsembleRegressor"] * nodes
    rows = frame.drop(columns=["target"]).head(60)
    records = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]
    ours = np.asarray(Bundle(tmp_path / "bundle").raw(records))
    np.testing.assert_allclose(ours, model.predict_raw_records(records),
                               atol=TOLERANCE, rtol=TOLERANCE)  # fmt: skip
    if task != "regression":
        np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-12)
