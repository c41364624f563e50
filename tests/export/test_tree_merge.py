"""Tree ensembles in one tree node: the members' trees share one ``TreeEnsembleRegressor``
(one per input precision), their links and the weighted mean applied to all at once, and
the bundle still scores exactly like the registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from export_support import Models, graph_session, need_onnx_extra
from keizoku.export import TOLERANCE, export_onnx
from keizoku.export.runner import Bundle
from keizoku.registry import load_model

need_onnx_extra()


@pytest.fixture(scope="module")
def models(registry_home: Path) -> Models:
    return Models(registry_home.parent, prefix="merge")


# (task, the two families, how many tree nodes the graph must have: one per precision
# for classifiers, one for regression: every member's trees summed in one float64 target)
CASES = [
    ("binary", ("lightgbm", "xgboost"), 1),  # both logistic, float32; x < t beside x <= t
    ("binary", ("random_forest", "lightgbm"), 1),  # probabilities beside log-odds
    ("binary", ("extra_trees", "hist_gradient_boosting"), 2),  # float32 and float64
    ("multiclass", ("lightgbm", "random_forest"), 1),  # softmax beside probabilities
    ("multiclass", ("xgboost", "hist_gradient_boosting"), 2),
    ("regression", ("xgboost", "random_forest"), 1),
    ("regression", ("lightgbm", "hist_gradient_boosting"), 1),  # float32 splits, float64 ones
    ("regression", ("lightgbm", "xgboost"), 1),
]


def tree_nodes(folder: Path) -> list[Any]:
    graph = onnx.load(str(folder / "model.onnx")).graph
    return [n for n in graph.node if n.op_type.startswith("TreeEnsemble")]


def branch_modes(node: Any) -> set[str]:
    modes = next(a.strings for a in node.attribute if a.name == "nodes_modes")
    return {m.decode() for m in modes} - {"LEAF"}


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
    found = tree_nodes(tmp_path / "bundle")
    assert [n.op_type for n in found] == ["TreeEnsembleRegressor"] * nodes
    for node in found:  # one split mode per node: onnxruntime's fast loop
        assert len(branch_modes(node)) == 1, branch_modes(node)
        if task == "regression":
            assert next(a.i for a in node.attribute if a.name == "n_targets") == 1
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


def test_strict_splits_beside_inclusive_ones_keep_their_answers_at_the_threshold() -> None:
    """An XGBoost split ``x < t`` merged with another family's ``x <= u`` is written as
    ``x <= nextafter(t, -inf)``: the same branch for every float32 value, at the threshold,
    one step either side, at ±0, ±inf and NaN (each member's own missing direction)."""
    from onnx import TensorProto

    from keizoku.export.graph import Graph
    from keizoku.export.trees import TreeParts, tree_node

    def stump(mode: str, threshold: float, missing_true: int) -> TreeParts:
        attrs: dict[str, list[Any]] = {
            "nodes_treeids": [0, 0, 0], "nodes_nodeids": [0, 1, 2],
            "nodes_featureids": [0, 0, 0], "nodes_modes": [mode, "LEAF", "LEAF"],
            "nodes_values": [threshold, 0.0, 0.0], "nodes_truenodeids": [1, 0, 0],
            "nodes_falsenodeids": [2, 0, 0],
            "nodes_missing_value_tracks_true": [missing_true, 0, 0],
            "target_treeids": [0, 0], "target_nodeids": [1, 2], "target_ids": [0, 0],
            "target_weights": [1.0, 2.0],
        }  # fmt: skip
        return TreeParts(attrs, 1, np.zeros(1), "NONE", double=False)

    t, u = float(np.float32(0.1)), float(np.float32(-2.5))
    g = Graph()
    out = tree_node(g, "x", [(stump("BRANCH_LT", t, 1), 0), (stump("BRANCH_LEQ", u, 0), 0)],
                    double=False)  # fmt: skip
    assert branch_modes(g.nodes[-1]) == {"BRANCH_LEQ"}
    session = graph_session(g, ("x", TensorProto.FLOAT, 1), (out, TensorProto.FLOAT, 2))
    up, down = np.float32(np.inf), np.float32(-np.inf)
    points = [np.nextafter(np.float32(c), d) for c in (t, u) for d in (up, down)]
    points += [np.float32(t), np.float32(u), np.float32(0.0), np.float32(-0.0), up, down]
    x = np.array(points + [np.float32(np.nan)], dtype=np.float32).reshape(-1, 1)
    got = session.run(None, {"x": x})[0]
    with np.errstate(invalid="ignore"):
        want_lt = np.where((x[:, 0] < np.float32(t)) | np.isnan(x[:, 0]), 1.0, 2.0)
        want_leq = np.where(x[:, 0] <= np.float32(u), 1.0, 2.0)
    np.testing.assert_array_equal(got, np.stack([want_lt, want_leq], axis=1))


def test_a_column_per_node_when_the_columns_hold_many_trees() -> None:
    """A classifier's trees with ``SPLIT_TREES`` or more per class get a node per class
    (onnxruntime's one-output loop), with the same scores as the one node; a forest's
    trees, which add to every class, keep one node."""
    from lightgbm import LGBMClassifier
    from onnx import TensorProto
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from keizoku.export.graph import Graph, convert_estimator
    from keizoku.export.trees import SPLIT_TREES, converted_parts, splits, tree_node

    x, y = load_iris(return_X_y=True)
    boosted = LGBMClassifier(n_estimators=SPLIT_TREES, num_leaves=4, verbose=-1).fit(x, y)
    parts = converted_parts(convert_estimator(boosted, 4, single=True), "multiclass", 3)
    assert parts is not None
    columns = splits([(parts, 0)])
    assert columns is not None and len(columns) == 3
    g = Graph()
    one = tree_node(g, "x", [(parts, 0)], double=False)
    each = [tree_node(g, "x", [c], double=False) for c in columns]
    rows = x.astype(np.float32)
    whole = graph_session(g, ("x", TensorProto.FLOAT, 4), (one, TensorProto.FLOAT, 3))
    want = whole.run(None, {"x": rows})[0]
    for j, out in enumerate(each):
        got = graph_session(g, ("x", TensorProto.FLOAT, 4), (out, TensorProto.FLOAT, 1))
        np.testing.assert_array_equal(got.run(None, {"x": rows})[0][:, 0], want[:, j])
    forest = RandomForestClassifier(n_estimators=SPLIT_TREES * 3, max_depth=2, random_state=0)
    shared = converted_parts(convert_estimator(forest.fit(x, y), 4, single=True), "multiclass", 3)
    assert shared is not None and splits([(shared, 0)]) is None


def test_a_bundle_with_many_trees_per_class_scores_like_the_model(
    models: Models, tmp_path: Path
) -> None:
    """A LightGBM classifier of more than ``SPLIT_TREES`` rounds: a node per class and
    member, and the bundle's parity with the registered model holds."""
    from keizoku.export.trees import SPLIT_TREES

    slow = {"n_estimators": SPLIT_TREES + 50, "learning_rate": 0.003}  # no early stop
    fitted = models.fit("multiclass", "lightgbm", slow)
    ref = models.register("multiclass", "lightgbm-many", fitted)
    frame = models.frame("multiclass")
    result = export_onnx(ref, tmp_path / "bundle", frame)
    assert result.parity.passed and result.parity.labels_equal == len(frame)
    found = tree_nodes(tmp_path / "bundle")
    assert len(found) == 3 * len(fitted.members)
    assert all(next(a.i for a in n.attribute if a.name == "n_targets") == 1 for n in found)
