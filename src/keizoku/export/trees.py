"""Several tree members as one ``TreeEnsembleRegressor`` node: an ensemble's trees in one pass.

A one-row call to onnxruntime costs about a microsecond per node, so an ensemble of tree
members built member by member (a cast, a tree node, a cast back, a weight each) spends
most of its time between nodes. Here each member's trees keep their own output columns
(targets) of one ``TreeEnsembleRegressor`` (one per input precision: float32 for the
converted families, float64 for HistGradientBoosting), so the sums are the members' raw
scores exactly as their own nodes gave them; the link (sigmoid, softmax, none) is then
applied to all members at once in float64 and the weighted mean is one ``MatMul`` (or
``Mul`` + ``ReduceSum`` for multiclass). Regression has no link: each member's leaf values
are scaled by its share and every tree sums into one target of one float64 node (the
weighted mean is that sum). XGBoost's ``x < t`` splits are written as ``x <= t'`` when they
share a node with the other families' ``<=`` (one mode: onnxruntime's fast loop). A
classifier whose columns hold ``SPLIT_TREES`` trees each or more gets a node per column.

A converted member whose node this module cannot read with certainty (an aggregate other
than SUM, an unexpected post-transform or class layout) is left to the per-member path:
:func:`converted_parts` returns None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keizoku.export.graph import Graph

__all__ = ["SPLIT_TREES", "TreeParts", "converted_parts", "hist_parts", "merged_trees", "splits"]

NODE_KEYS = (
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
    "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
)  # fmt: skip
TARGET_KEYS = ("target_treeids", "target_nodeids", "target_ids", "target_weights")
LINKS = ("NONE", "LOGISTIC", "SOFTMAX")
# Output columns holding this many trees each (on average) get a node of their own: one
# output is onnxruntime's simpler loop, worth more than the extra node from here (s10:
# car, 8 columns of 865 trees, -26 % same record, -11 % varied; 3 columns of 180 trees even)
SPLIT_TREES = 256


@dataclass
class TreeParts:
    """One member's trees as ``TreeEnsembleRegressor`` attributes (targets from 0), the
    per-target base added to the sums, and the link that turns them into the output."""

    attrs: dict[str, list[Any]]  # NODE_KEYS + TARGET_KEYS
    n_targets: int
    base: np.ndarray  # float64 [n_targets]
    link: str  # one of LINKS
    double: bool  # float64 inputs and thresholds (else float32, as the library compares)


def converted_parts(proto: Any, task: str, n_classes: int) -> TreeParts | None:
    """The trees of a converter's one-node model (skl2onnx / onnxmltools), or None when its
    node is not one this module reads exactly (then the member keeps its own node)."""
    trees = [n for n in proto.graph.node if n.op_type.startswith("TreeEnsemble")]
    kinds = {n.op_type for n in proto.graph.node}
    others = kinds - {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "Identity"}
    if len(trees) != 1 or others:
        return None
    node = trees[0]
    a = {x.name: x for x in node.attribute}
    if "aggregate_function" in a and a["aggregate_function"].s.decode() != "SUM":
        return None
    link = a["post_transform"].s.decode() if "post_transform" in a else "NONE"
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    ids = list(a[f"{prefix}_ids"].ints)
    weights = [float(w) for w in a[f"{prefix}_weights"].floats]
    if task == "regression":
        n_targets, ok = 1, link == "NONE" and set(ids) == {0}
    elif n_classes == 2:
        # onnxruntime's binary case: one score s for the second class; NONE gives [1-s, s]
        # only when every weight is ≥ 0, LOGISTIC gives [1-σ(s), σ(s)].
        n_targets = 1
        ok = set(ids) == {0} and (link == "LOGISTIC" or (link == "NONE" and min(weights) >= 0))
    else:
        n_targets = n_classes
        ok = set(ids) <= set(range(n_classes)) and link in ("NONE", "SOFTMAX")
    if not ok or any(k.endswith("_as_tensor") for k in a):
        return None
    base = np.zeros(n_targets)
    if "base_values" in a and len(a["base_values"].floats):
        if len(a["base_values"].floats) != n_targets:
            return None
        base = np.asarray(a["base_values"].floats, dtype=np.float64)
    attrs: dict[str, list[Any]] = {
        "nodes_treeids": list(a["nodes_treeids"].ints),
        "nodes_nodeids": list(a["nodes_nodeids"].ints),
        "nodes_featureids": list(a["nodes_featureids"].ints),
        "nodes_modes": [m.decode() for m in a["nodes_modes"].strings],
        "nodes_values": [float(v) for v in a["nodes_values"].floats],
        "nodes_truenodeids": list(a["nodes_truenodeids"].ints),
        "nodes_falsenodeids": list(a["nodes_falsenodeids"].ints),
        "nodes_missing_value_tracks_true": list(a["nodes_missing_value_tracks_true"].ints)
        if "nodes_missing_value_tracks_true" in a
        else [0] * len(a["nodes_nodeids"].ints),
        "target_treeids": list(a[f"{prefix}_treeids"].ints),
        "target_nodeids": list(a[f"{prefix}_nodeids"].ints),
        "target_ids": ids,
        "target_weights": weights,
    }
    return TreeParts(attrs, n_targets, base, link, double=False)


def hist_parts(est: Any) -> TreeParts:
    """HistGradientBoosting's trees with float64 thresholds (``nodes_values_as_tensor``):
    its thresholds lie a hair from data values (15.129999999999999 for 15.13), which
    float32 inputs cannot tell apart."""
    from keizoku.errors import UserInputError

    n_targets = len(est._predictors[0])
    attrs: dict[str, list[Any]] = {k: [] for k in NODE_KEYS + TARGET_KEYS}
    tree_id = 0
    for per_iteration in est._predictors:
        for k, predictor in enumerate(per_iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise UserInputError(
                    "ONNX export does not support HistGradientBoosting's native categorical "
                    "splits; keizoku's encoder codes categories itself (retrain the model)."
                )
            for i, node in enumerate(nodes):
                leaf = bool(node["is_leaf"])
                attrs["nodes_treeids"].append(tree_id)
                attrs["nodes_nodeids"].append(i)
                attrs["nodes_featureids"].append(0 if leaf else int(node["feature_idx"]))
                attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
                attrs["nodes_values"].append(0.0 if leaf else float(node["num_threshold"]))
                attrs["nodes_truenodeids"].append(0 if leaf else int(node["left"]))
                attrs["nodes_falsenodeids"].append(0 if leaf else int(node["right"]))
                attrs["nodes_missing_value_tracks_true"].append(
                    0 if leaf else int(node["missing_go_to_left"])
                )
                if leaf:
                    attrs["target_treeids"].append(tree_id)
                    attrs["target_nodeids"].append(i)
                    attrs["target_ids"].append(k)
                    attrs["target_weights"].append(float(node["value"]))
            tree_id += 1
    base = np.asarray(est._baseline_prediction, dtype=np.float64).ravel()
    if not hasattr(est, "classes_"):
        link = "NONE"
    else:
        link = "LOGISTIC" if n_targets == 1 else "SOFTMAX"
    return TreeParts(attrs, n_targets, base, link, double=True)


def tree_node(
    g: Graph,
    x: str,
    parts: list[tuple[TreeParts, int]],
    double: bool,
    *,
    one_target: bool = False,
    base: float = 0.0,
) -> str:
    """One ``TreeEnsembleRegressor`` over ``x`` holding every member's trees (each at its
    feature offset in ``x``), its targets member after member: float [N, Σ n_targets]; with
    ``one_target`` all in one column plus ``base`` (float [N, 1]: regression, leaf values
    scaled by ``_scaled``). ``double``: float64 thresholds and sums; a float32 member's
    thresholds are widened exactly, its columns of ``x`` must hold float32 values
    (``_rounded``)."""
    from onnx import helper, numpy_helper

    merged: dict[str, Any] = {k: [] for k in NODE_KEYS + TARGET_KEYS if k != "nodes_values"}
    thresholds: list[np.ndarray] = []
    branches = {m for p, _ in parts for m in p.attrs["nodes_modes"]} - {"LEAF"}
    trees = targets = 0
    for p, offset in parts:
        a = p.attrs
        merged["nodes_treeids"] += [t + trees for t in a["nodes_treeids"]]
        merged["target_treeids"] += [t + trees for t in a["target_treeids"]]
        merged["target_ids"] += [0 if one_target else t + targets for t in a["target_ids"]]
        merged["nodes_featureids"] += [f + offset for f in a["nodes_featureids"]]
        values = np.array(a["nodes_values"], dtype=np.float64 if p.double else np.float32)
        modes = a["nodes_modes"]
        if branches == {"BRANCH_LT", "BRANCH_LEQ"}:
            modes = _as_leq(modes, values)
        merged["nodes_modes"] += modes
        thresholds.append(values)
        for key in ("nodes_nodeids", "nodes_truenodeids", "nodes_falsenodeids",
                    "nodes_missing_value_tracks_true", "target_nodeids",
                    "target_weights"):  # fmt: skip
            merged[key] += a[key]
        trees = max(merged["nodes_treeids"]) + 1
        targets += p.n_targets
    kind = np.float64 if double else np.float32
    values = numpy_helper.from_array(np.concatenate(thresholds).astype(kind))
    weights = numpy_helper.from_array(np.array(merged.pop("target_weights"), dtype=kind))
    if one_target and base:
        merged["base_values_as_tensor"] = numpy_helper.from_array(np.array([base], dtype=kind))
    out = g.name("trees")
    g.nodes.append(
        helper.make_node(
            "TreeEnsembleRegressor",
            [x],
            [out],
            domain="ai.onnx.ml",
            n_targets=1 if one_target else targets,
            aggregate_function="SUM",
            post_transform="NONE",
            nodes_values_as_tensor=values,
            target_weights_as_tensor=weights,
            **merged,
        )  # fmt: skip
    )
    return out


def _as_leq(modes: list[str], thresholds: np.ndarray) -> list[str]:
    """``modes`` with ``BRANCH_LT`` (XGBoost's) written as ``BRANCH_LEQ`` (the other
    families'), each such threshold moved to the next value below in its own precision:
    ``x < t`` is ``x <= nextafter(t, -inf)`` for every x of that precision (NaN: false
    either way; the missing-value direction decides). onnxruntime walks a node whose
    splits share one mode in its fast loop, else it tests the mode at every split (+2-25 %
    per call, measured s10). ``thresholds`` are changed in place."""
    lt = np.array([m == "BRANCH_LT" for m in modes], dtype=bool)
    thresholds[lt] = np.nextafter(thresholds[lt], thresholds.dtype.type(-np.inf))
    return ["BRANCH_LEQ" if m == "BRANCH_LT" else m for m in modes]


def _scaled(parts: TreeParts, share: float) -> TreeParts:
    """A regression member's trees with every leaf value times ``share`` (and its base):
    summed in one target with the other members' they give Σ share·member."""
    attrs = dict(parts.attrs)
    attrs["target_weights"] = [w * share for w in parts.attrs["target_weights"]]
    return TreeParts(attrs, parts.n_targets, parts.base * share, parts.link, parts.double)


def splits(parts: list[tuple[TreeParts, int]]) -> list[tuple[TreeParts, int]] | None:
    """``parts`` as one part per output column (member after member, its targets in order)
    when they hold ``SPLIT_TREES`` trees or more per column and every tree adds to one
    column only; else None (one node is faster, or a tree feeds several columns: a forest's
    classifier)."""
    columns = sum(p.n_targets for p, _ in parts)
    trees = sum(len(set(p.attrs["nodes_treeids"])) for p, _ in parts)
    if columns < 2 or trees < SPLIT_TREES * columns:
        return None
    out: list[tuple[TreeParts, int]] = []
    for p, offset in parts:
        column_of: dict[int, int] = {}
        for tree, target in zip(p.attrs["target_treeids"], p.attrs["target_ids"], strict=True):
            if column_of.setdefault(tree, target) != target:
                return None
        out += [(_column(p, column_of, j), offset) for j in range(p.n_targets)]
    return out if all(c.attrs["nodes_treeids"] for c, _ in out) else None


def _column(p: TreeParts, column_of: dict[int, int], j: int) -> TreeParts:
    """The trees of ``p`` that add to its column ``j``, as a one-column part."""
    a = p.attrs
    nodes = [i for i, t in enumerate(a["nodes_treeids"]) if column_of.get(t) == j]
    leaves = [i for i, t in enumerate(a["target_treeids"]) if column_of[t] == j]
    attrs = {k: [a[k][i] for i in nodes] for k in NODE_KEYS}
    attrs.update({k: [a[k][i] for i in leaves] for k in TARGET_KEYS})
    attrs["target_ids"] = [0] * len(leaves)
    return TreeParts(attrs, 1, p.base[j : j + 1], p.link, p.double)


def _tree_columns(g: Graph, x: str, parts: list[tuple[TreeParts, int]], double: bool) -> str:
    """The parts' raw scores, float [N, Σ n_targets]: one node, or one per column
    (``splits``) side by side."""
    columns = splits(parts)
    if columns is None:
        return tree_node(g, x, parts, double)
    return g.op("Concat", [tree_node(g, x, [c], double) for c in columns], axis=1)


def merged_trees(
    g: Graph,
    members: list[tuple[TreeParts, str, int, float]],
    task: str,
    n_classes: int,
) -> tuple[str, float]:
    """Σ share·output of tree members (``(parts, encoded input, its width, share)``, share =
    weight / total weight) and Σ share; the output is probabilities [N, k] or values [N]."""
    if task == "regression":
        return _summed_trees(g, members)
    columns: list[str] = []
    order: list[tuple[TreeParts, float]] = []  # members in the order of the columns
    for double in (False, True):
        group = [m for m in members if m[0].double == double]
        if not group:
            continue
        x, offsets = _group_input(g, group, double)
        raw = _tree_columns(g, x, [(p, offsets[xi]) for p, xi, _, _ in group], double)
        columns.append(g.op("Cast", [raw], to=11))
        order += [(p, share) for p, _, _, share in group]
    scores = columns[0] if len(columns) == 1 else g.op("Concat", columns, axis=1)
    base = np.concatenate([p.base for p, _ in order])
    if base.any():
        scores = g.op("Add", [scores, g.const(base)])
    shares = np.array([share for _, share in order])
    total = float(shares.sum())
    links = [p.link for p, _ in order]
    if n_classes == 2:  # one score per member: the second class's probability (or log-odds)
        p1 = _linked(g, scores, links, "LOGISTIC", "Sigmoid", (1, -1))
        mix = g.const(np.stack([-shares, shares], axis=1))  # [M, 2]: Σ -s·p, Σ s·p
        return g.op("Add", [g.op("MatMul", [p1, mix]), g.const(np.array([total, 0.0]))]), total
    shape = g.const(np.array([-1, len(order), n_classes], dtype=np.int64))
    shaped = g.op("Reshape", [scores, shape])  # [N, members, classes]
    probs = _linked(g, shaped, links, "SOFTMAX", "Softmax", (1, -1, 1), axis=2)
    weighted = g.op("Mul", [probs, g.const(shares.reshape(1, -1, 1))])
    axes = g.const(np.array([1], dtype=np.int64))
    return g.op("ReduceSum", [weighted, axes], keepdims=0), total


def _group_input(
    g: Graph, group: list[tuple[TreeParts, str, int, float]], double: bool
) -> tuple[str, dict[str, int]]:
    """The tree node's input for members of one precision: their encoded inputs side by
    side (each once), cast to float32 unless ``double``; and each input's column offset."""
    x, offsets = _side_by_side(g, [(xi, w) for _, xi, w, _ in group], lambda xi: xi)
    if not double:  # the encoders' output is float64
        x = g.op("Cast", [x], to=1)
    return x, offsets


def _side_by_side(
    g: Graph, inputs: list[tuple[Any, int]], tensor: Callable[[Any], str]
) -> tuple[str, dict[Any, int]]:
    """``(key, width)`` laid side by side, each key once in first-seen order: the tensor
    (one ``Concat`` of ``tensor(key)``, or the only one) and each key's column offset."""
    order: list[str] = []
    offsets: dict[Any, int] = {}
    width = 0
    for key, w in inputs:
        if key not in offsets:
            offsets[key] = width
            order.append(tensor(key))
            width += w
    return (order[0] if len(order) == 1 else g.op("Concat", order, axis=1)), offsets


def _summed_trees(g: Graph, members: list[tuple[TreeParts, str, int, float]]) -> tuple[str, float]:
    """Regression: Σ share·value of every tree member in one target of one float64 node,
    each member's leaf values scaled by its share (the weighted mean is that sum). A float32
    member reads its columns rounded to float32 and its thresholds widened, so each split
    compares exactly as in float32; the sum is float64 (more exact than the members' float32
    sums). One target takes onnxruntime's single-output loop: 6-12 % less per call on
    varying records than one target per member (three regression ensembles, s10)."""
    keyed = [((xi, p.double), w) for p, xi, w, _ in members]
    x, offsets = _side_by_side(g, keyed, lambda key: key[0] if key[1] else _rounded(g, key[0]))
    parts = [(_scaled(p, share), offsets[(xi, p.double)]) for p, xi, _, share in members]
    base = float(sum(float(p.base.sum()) for p, _ in parts))
    summed = tree_node(g, x, parts, True, one_target=True, base=base)  # float [N, 1]
    value = g.op("Reshape", [g.op("Cast", [summed], to=11), g.const(np.array([-1], np.int64))])
    return value, float(sum(share for _, _, _, share in members))


def _rounded(g: Graph, x: str) -> str:
    """``x`` (float64) rounded to float32 values, kept as float64."""
    return g.op("Cast", [g.op("Cast", [x], to=1)], to=11)


def _linked(
    g: Graph,
    scores: str,
    links: list[str],
    name: str,
    op: str,
    mask_shape: tuple[int, ...],
    **attrs: Any,
) -> str:
    """``op`` applied to the scores of the members whose link is ``name``; the others'
    scores (link NONE: already probabilities) as they are."""
    if all(link == name for link in links):
        return g.op(op, [scores], **attrs)
    if all(link == "NONE" for link in links):
        return scores
    mask = np.array([link == name for link in links]).reshape(mask_shape)
    return g.op("Where", [g.const(mask), g.op(op, [scores], **attrs), scores])
