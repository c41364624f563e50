"""One ONNX graph for a whole keizoku model: encoder(s), member estimators, their mix.

Inputs (only those the schema needs):

* ``numeric``: ``double [N, n_numeric]``, the numeric features in schema order, NaN when
  missing;
* ``categorical``: ``string [N, n_categorical]``, the canonical text
  (``keizoku.data.labels.canonical``) of each categorical/boolean feature, or
  ``MISSING`` when missing.

Outputs: ``probabilities`` (``double [N, k]``) and ``label`` (``int64 [N]``, the index of
the class) for classifiers; ``value`` (``double [N]``) for regression.

Each distinct encoder of the model (the fold models of a bag share one) is built once as
vectorised ONNX ops that equal ``TabularEncoder.transform`` (numbers: imputation and
scaling in one-hot mode; categories: one ``LabelEncoder`` over ``"<column>\\x1f<value>"``
keys, unknown and missing values coded as the encoder codes them). Each member's estimator
is converted by skl2onnx (LightGBM and XGBoost through onnxmltools' converters), tree
models on float32 inputs (scikit-learn's trees compare float32 values), the others on
float64; k-NN and HistGradientBoosting are built here (float64), where skl2onnx 1.20 is
not faithful, and linear models too (``MatMul``, which int8 quantization can act on). The
members are mixed by their weights, then temperature-scaled, in the graph.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keizoku.errors import UserInputError
from keizoku.export.neural import NEURAL_FAMILIES, mlp
from keizoku.export.trees import TreeParts, converted_parts, hist_parts, merged_trees, splits
from keizoku.features.encoder import DATE_PARTS
from keizoku.registry.servable import ServableMember, ServableModel

__all__ = [
    "EXPORTABLE",
    "MISSING",
    "OPSET",
    "TREE_FAMILIES",
    "Graph",
    "build_graph",
    "input_layout",
]

OPSET = {"": 20, "ai.onnx.ml": 4}  # StringConcat needs 20; LabelEncoder to double needs ml 4
MISSING = "\x1fmissing"  # the text of a missing category value (never a canonical value)
SEP = "\x1f"
TREE_FAMILIES = {"lightgbm", "xgboost", "hist_gradient_boosting", "random_forest", "extra_trees"}
EXPORTABLE = TREE_FAMILIES | NEURAL_FAMILIES | {"linear", "knn", "svm"}
NOT_EXPORTABLE = {
    "catboost": "CatBoost has no converter to ONNX that keeps its categorical handling exact",
}
CATEGORY_KINDS = ("categorical", "boolean")
GRAPH_DATE_PARTS = ("year", "month", "day", "day_of_week", "hour")  # what _date_parts builds


@dataclass
class Graph:
    """An ONNX model being built: nodes, constants and the names given so far."""

    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"kz/{hint}/{self.count}"

    def const(self, value: Any, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        domain = attrs.pop("domain", "")
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out


def input_layout(model: ServableModel) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, datetime feature names), each in schema order.

    Raises a clear error for a feature kind the graph cannot encode (text).
    """
    numeric, categorical, dates = [], [], []
    for col in model.schema.features:
        if col.kind == "numeric":
            numeric.append(col.name)
        elif col.kind in CATEGORY_KINDS:
            categorical.append(col.name)
        elif col.kind == "datetime":
            dates.append(col.name)
        else:
            raise UserInputError(
                f"Feature '{col.name}' is a {col.kind} column: ONNX export encodes numeric, "
                "categorical, boolean and datetime features only (keizoku's text tokens have "
                "no ONNX equivalent). Retrain without it (set its role to "
                "'ignored' in schema.yaml, then `keizoku train`) to export the model."
            )
    return numeric, categorical, dates


def check_families(model: ServableModel) -> None:
    """A clear error naming each member family that has no faithful converter."""
    bad = sorted({m.family for m in model.members if m.family not in EXPORTABLE})
    if not bad:
        return
    why = "; ".join(NOT_EXPORTABLE.get(f, f"'{f}' has no ONNX converter here") for f in bad)
    raise UserInputError(
        f"Cannot export to ONNX: the model has member famil{'ies' if len(bad) > 1 else 'y'} "
        f"{', '.join(bad)} ({why}). Retrain without {'them' if len(bad) > 1 else 'it'}: "
        f"`keizoku train --exclude-family {','.join(bad)}` (exportable: "
        f"{', '.join(sorted(EXPORTABLE))})."
    )


def build_graph(model: ServableModel, *, name: str = "keizoku", for_int8: bool = False) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring); ``for_int8``: linear
    members in float32, the type onnxruntime's dynamic int8 quantization works on."""
    from onnx import TensorProto, helper

    check_families(model)
    numeric, categorical, dates = input_layout(model)
    g = Graph()
    inputs = []
    if numeric:
        inputs.append(
            helper.make_tensor_value_info("numeric", TensorProto.DOUBLE, [None, len(numeric)])
        )
    if categorical:
        inputs.append(
            helper.make_tensor_value_info(
                "categorical", TensorProto.STRING, [None, len(categorical)]
            )
        )
    if dates:
        inputs.append(
            helper.make_tensor_value_info("datetime", TensorProto.DOUBLE, [None, len(dates)])
        )
    encoded: dict[Any, str] = {}
    outputs: list[tuple[str, float]] = []
    trees: list[tuple[TreeParts, str, int, float]] = []
    total = float(sum(m.weight for m in model.members))
    n_classes = len(model.classes or [])
    mergeable = _tree_parts(model.members, model.task, n_classes)
    for i, member in enumerate(model.members):
        key = _encoder_key(member.encoder)
        if key not in encoded:
            encoded[key] = _encoder(g, member.encoder, numeric, categorical, dates)
        if i in mergeable:
            trees.append((mergeable[i], encoded[key], _width_of(member), member.weight / total))
            continue
        out = _member(g, member, encoded[key], model.task, f"m{i}", for_int8)
        outputs.append((out, member.weight / total))
    mixed = _mix(g, outputs, trees, model.task, n_classes)
    temperature = float(getattr(model, "temperature", 1.0))
    if model.task == "regression":
        result = [helper.make_tensor_value_info("value", TensorProto.DOUBLE, [None])]
        _name_output(g, mixed, "value")
    else:
        if temperature != 1.0:
            clipped = g.op("Clip", [mixed, g.const(1e-15), g.const(1.0)])
            logits = g.op("Div", [g.op("Log", [clipped]), g.const(temperature)])
            mixed = g.op("Softmax", [logits], axis=1)
        k = len(model.classes or [])
        _name_output(g, mixed, "probabilities")
        g.nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
        result = [
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, k]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        ]
    graph = helper.make_graph(g.nodes, name, inputs, result, initializer=g.initializers)
    opsets = [helper.make_opsetid(d, v) for d, v in OPSET.items()]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="keizoku")
    onnx_model.ir_version = 9
    return onnx_model


def _name_output(g: Graph, tensor: str, name: str) -> None:
    """Make ``tensor`` the graph output ``name``: its node renamed when nothing else reads
    it (an ``Identity`` is one more node per call), else through an ``Identity``."""
    from onnx import helper

    producers = [n for n in g.nodes if tensor in n.output]
    if len(producers) == 1 and not any(tensor in n.input for n in g.nodes):
        outputs = producers[0].output
        outputs[list(outputs).index(tensor)] = name
    else:
        g.nodes.append(helper.make_node("Identity", [tensor], [name]))


def _columns(g: Graph, source: str, cols: list[int], width: int) -> str:
    """``source[:, cols]``: the input itself when ``cols`` are all its columns in order."""
    if cols == list(range(width)):
        return source
    return g.op("Gather", [source, g.const(np.array(cols, dtype=np.int64))], source, axis=1)


# ------------------------------------------------------------------------ encoder


def _encoder(
    g: Graph, enc: Any, numeric: list[str], categorical: list[str], dates: list[str]
) -> str:
    """The encoder's output matrix (double [N, n_features_out_]) as ONNX ops."""
    num_at = {n: j for j, n in enumerate(numeric)}
    cat_at = {n: j for j, n in enumerate(categorical)}
    onehot = enc.mode == "onehot"
    blocks: list[str] = []
    order: list[int] = []  # block column → the encoder's output position
    num_plan = [(n, s) for n, step, s in enc.plan_ if step == "numeric"]
    cat_plan = [(n, s) for n, step, s in enc.plan_ if step == "category"]
    date_plan = [n for n, step, _ in enc.plan_ if step == "datetime"]
    position: dict[tuple[str, int], int] = {}  # (column, slot) → output position
    at = 0
    for name, step, state in enc.plan_:
        width = _width(step, state, onehot)
        for slot in range(width):
            position[(name, slot)] = at + slot
        at += width
    if num_plan:
        x = _columns(g, "numeric", [num_at[n] for n, _ in num_plan], len(numeric))
        if onehot:
            miss = g.op("IsNaN", [x])
            medians = g.const(np.array([s["median"] for _, s in num_plan]))
            means = g.const(np.array([s["mean"] for _, s in num_plan]))
            scales = g.const(np.array([s["scale"] for _, s in num_plan]))
            filled = g.op("Where", [miss, medians, x])
            blocks.append(g.op("Div", [g.op("Sub", [filled, means]), scales]))
            order += [position[(n, 0)] for n, _ in num_plan]
            flagged = [j for j, (_, s) in enumerate(num_plan) if s["indicator"]]
            if flagged:
                flags = g.op("Cast", [miss], to=11)  # DOUBLE
                idx = g.const(np.array(flagged, dtype=np.int64))
                blocks.append(g.op("Gather", [flags, idx], axis=1))
                order += [position[(num_plan[j][0], 1)] for j in flagged]
        else:
            blocks.append(x)
            order += [position[(n, 0)] for n, _ in num_plan]
    if cat_plan:
        codes = _codes(g, cat_plan, cat_at, ordinal=not onehot)
        if onehot:
            slot_col, slot_code, slot_missing = [], [], []
            for j, (name, state) in enumerate(cat_plan):
                width = _width("category", state, True)
                for slot in range(width):
                    slot_col.append(j)
                    is_missing = slot == width - 1
                    slot_code.append(-3.0 if is_missing else float(slot))
                    slot_missing.append(1.0 if is_missing else 0.0)
                    order.append(position[(name, slot)])
            wide = g.op("Gather", [codes, g.const(np.array(slot_col, dtype=np.int64))], axis=1)
            hit = g.op("Cast", [g.op("Equal", [wide, g.const(np.array(slot_code))])], to=11)
            nan = g.op("Cast", [g.op("IsNaN", [wide])], to=11)
            missing = g.op("Mul", [nan, g.const(np.array(slot_missing))])
            blocks.append(g.op("Add", [hit, missing]))
        else:
            blocks.append(codes)
            order += [position[(n, 0)] for n, _ in cat_plan]
    if date_plan:
        if DATE_PARTS != GRAPH_DATE_PARTS:  # pragma: no cover - a guard for a future encoder
            raise UserInputError(
                f"ONNX export builds the date parts {GRAPH_DATE_PARTS}, "
                f"the encoder makes {DATE_PARTS}: update export/graph.py."
            )
        stamps = _columns(g, "datetime", [dates.index(n) for n in date_plan], len(dates))
        blocks.append(_date_parts(g, stamps, len(date_plan), onehot))
        order += [position[(n, slot)] for n in date_plan for slot in range(len(DATE_PARTS))]
    if not blocks:
        raise UserInputError("The model has no features to encode: nothing to export.")
    matrix = blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, axis=1)
    if order == sorted(order):
        return matrix
    inverse = np.argsort(np.array(order, dtype=np.int64))  # output position → block column
    return g.op("Gather", [matrix, g.const(inverse.astype(np.int64))], "encoded", axis=1)


def _date_parts(g: Graph, stamps: str, n: int, onehot: bool) -> str:
    """double [N, 5n]: each column's year, month, day, day of the week (Monday 0) and hour
    (``DATE_PARTS``, as pandas gives them) from its seconds since 1970-01-01T00:00 of the
    wall-clock time, by integer arithmetic in float64 (exact below 2^53; H. Hinnant's
    ``civil_from_days``). NaN when missing (0 in one-hot mode, as the encoder does)."""

    def c(v: float) -> str:
        return g.const(np.float64(v))

    def floordiv(a: str, b: float) -> str:
        return g.op("Floor", [g.op("Div", [a, c(b)])])

    def sub(a: str, b: str) -> str:
        return g.op("Sub", [a, b])

    def add(a: str, b: str) -> str:
        return g.op("Add", [a, b])

    def mul(a: str, b: float) -> str:
        return g.op("Mul", [a, c(b)])

    days = floordiv(stamps, 86400)
    hour = floordiv(sub(stamps, mul(days, 86400)), 3600)
    shifted = g.op("Add", [days, c(3)])  # 1970-01-01 was a Thursday (3)
    weekday = sub(shifted, mul(floordiv(shifted, 7), 7))
    z = g.op("Add", [days, c(719468)])  # days since 0000-03-01
    era = floordiv(z, 146097)
    doe = sub(z, mul(era, 146097))  # day of the 400-year era
    yoe = floordiv(
        sub(add(sub(doe, floordiv(doe, 1460)), floordiv(doe, 36524)), floordiv(doe, 146096)), 365
    )
    doy = sub(doe, add(mul(yoe, 365), sub(floordiv(yoe, 4), floordiv(yoe, 100))))
    mp = floordiv(g.op("Add", [mul(doy, 5), c(2)]), 153)  # month from March = 0
    day = g.op("Add", [sub(doy, floordiv(g.op("Add", [mul(mp, 153), c(2)]), 5)), c(1)])
    late = g.op("Cast", [g.op("GreaterOrEqual", [mp, c(10)])], to=11)
    month = sub(g.op("Add", [mp, c(3)]), mul(late, 12))
    early = g.op("Cast", [g.op("LessOrEqual", [month, c(2)])], to=11)
    year = add(add(yoe, mul(era, 400)), early)
    axes = g.const(np.array([2], dtype=np.int64))
    parts = [g.op("Unsqueeze", [p, axes]) for p in (year, month, day, weekday, hour)]
    stacked = g.op("Concat", parts, axis=2)  # [N, n, 5]
    flat = g.op("Reshape", [stacked, g.const(np.array([-1, 5 * n], dtype=np.int64))])
    if not onehot:
        return flat
    return g.op("Where", [g.op("IsNaN", [flat]), c(0.0), flat])


def _width(step: str, state: dict[str, Any], onehot: bool) -> int:
    if step == "numeric":
        return 2 if onehot and state["indicator"] else 1
    if step == "datetime":
        return len(DATE_PARTS)
    if step != "category":
        raise UserInputError(f"ONNX export cannot encode a '{step}' feature.")
    return len(state["index"]) + (1 if state["other"] else 0) + 1 if onehot else 1


def _codes(
    g: Graph, plan: list[tuple[str, dict[str, Any]]], at: dict[str, int], *, ordinal: bool
) -> str:
    """double [N, len(plan)]: each category's code as ``TabularEncoder._code`` gives it
    (ordinal numeric codes: the level's number, as ``_expand`` gives it)."""
    from onnx import numpy_helper

    keys: list[str] = []
    values: list[float] = []
    unknown: list[float] = []
    for j, (_, state) in enumerate(plan):
        numbers = ordinal and state["numeric_codes"]
        for level, code in state["index"].items():
            keys.append(f"{j}{SEP}{level}")
            values.append(float(int(level)) if numbers else float(code))
        keys.append(f"{j}{SEP}{MISSING}")
        values.append(math.nan)
        if numbers:
            unknown.append(math.nan)
        else:
            unknown.append(float(len(state["index"])) if state["other"] else -1.0)
    text = _columns(g, "categorical", [at[n] for n, _ in plan], len(at))
    prefixes = g.const(np.array([f"{j}{SEP}" for j in range(len(plan))], dtype=object))
    joined = g.op("StringConcat", [prefixes, text])
    same = len({"nan" if math.isnan(u) else u for u in unknown}) == 1
    # one code for every column's unknown keys: LabelEncoder's default; else a sentinel
    # (no code is -1e300) replaced by each column's code
    sentinel = unknown[0] if same else -1e300
    codes = g.op(
        "LabelEncoder",
        [joined],
        domain="ai.onnx.ml",
        keys_strings=keys,
        values_tensor=numpy_helper.from_array(np.array(values, dtype=np.float64)),
        default_tensor=numpy_helper.from_array(np.array([sentinel], dtype=np.float64)),
    )
    if same:
        return codes
    is_unknown = g.op("Equal", [codes, g.const(sentinel)])
    return g.op("Where", [is_unknown, g.const(np.array(unknown)), codes])


# ------------------------------------------------------------------------ members


def _member(
    g: Graph, member: ServableMember, x: str, task: str, prefix: str, for_int8: bool
) -> str:
    """The member's output (double [N, k] probabilities, or [N] values) from ``x``."""
    from onnx import compose

    if member.family == "knn":
        return _knn(g, member.estimator, x, task)
    if member.family in NEURAL_FAMILIES:
        return mlp(g, member.estimator, x, task)
    if member.family == "linear":
        return _linear(g, member.estimator, x, task, for_int8)
    # scikit-learn's trees compare float32; onnxruntime has no float64 SVMRegressor
    single = member.family in TREE_FAMILIES or (member.family == "svm" and task == "regression")
    proto = convert_estimator(member.estimator, int(_width_of(member)), single=single)
    graph = compose.add_prefix_graph(proto.graph, f"{prefix}/")
    g.nodes.append(_cast_node(x, graph.input[0].name, single))
    g.nodes.extend(graph.node)
    g.initializers.extend(graph.initializer)
    out = graph.output[0 if task == "regression" else 1].name
    out = g.op("Cast", [out], to=11)
    if task == "regression":
        out = g.op("Reshape", [out, g.const(np.array([-1], dtype=np.int64))])
    return out


def _linear(g: Graph, est: Any, x: str, task: str, single: bool = False) -> str:
    """Ridge / logistic regression as ``MatMul`` + bias (+ sigmoid or softmax): plain
    algebra, which int8 dynamic quantization can act on when ``single`` (float32; skl2onnx's
    ``LinearClassifier`` op it cannot)."""
    coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))  # [targets, features]
    bias = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
    if single:
        x32 = g.op("Cast", [x], to=1)
        weights = g.const(coef.T.astype(np.float32))
        product = g.op("Cast", [g.op("MatMul", [x32, weights])], to=11)
    else:
        product = g.op("MatMul", [x, g.const(coef.T.copy())])
    score = g.op("Add", [product, g.const(bias)])
    if task == "regression":
        return g.op("Reshape", [score, g.const(np.array([-1], dtype=np.int64))])
    if coef.shape[0] == 1:  # binary: the score is the log-odds of the second class
        p = g.op("Sigmoid", [score])
        return g.op("Concat", [g.op("Sub", [g.const(1.0), p]), p], axis=1)
    return g.op("Softmax", [score], axis=1)


def _knn(g: Graph, est: Any, x: str, task: str) -> str:
    """k-NN as scikit-learn computes it (brute force, Euclidean): skl2onnx 1.20 weights
    neighbours by distance wrongly, so the graph is built here."""
    if getattr(est, "effective_metric_", "euclidean") != "euclidean":
        raise UserInputError(
            f"ONNX export supports k-NN with the Euclidean metric, not {est.effective_metric_!r}."
        )
    train = np.asarray(est._fit_X, dtype=np.float64)
    axes1 = g.const(np.array([1], dtype=np.int64))
    axes2 = g.const(np.array([2], dtype=np.int64))
    diff = g.op("Sub", [g.op("Unsqueeze", [x, axes1]), g.const(train[None, :, :])])
    dist = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [diff, diff]), axes2], keepdims=0)])
    k = g.const(np.array([int(est.n_neighbors)], dtype=np.int64))
    near = g.name("knn_dist")
    idx = g.name("knn_index")
    from onnx import helper

    g.nodes.append(helper.make_node("TopK", [dist, k], [near, idx], axis=1, largest=0, sorted=1))
    if est.weights == "distance":  # 1/d; a row with an exact match weighs only its matches
        zero = g.op("Cast", [g.op("Equal", [near, g.const(0.0)])], to=11)
        any_zero = g.op("ReduceMax", [zero, axes1], keepdims=1)
        inverse = g.op("Div", [g.const(1.0), near])
        weights = g.op("Where", [g.op("Greater", [any_zero, g.const(0.0)]), zero, inverse])
    elif est.weights == "uniform":
        weights = g.op("Add", [g.op("Mul", [near, g.const(0.0)]), g.const(1.0)])
    else:
        raise UserInputError("ONNX export supports k-NN weights 'uniform' and 'distance' only.")
    total = g.op("ReduceSum", [weights, axes1], keepdims=1)
    if task == "regression":
        values = g.op("Gather", [g.const(np.asarray(est._y, dtype=np.float64)), idx], axis=0)
        summed = g.op("ReduceSum", [g.op("Mul", [values, weights]), axes1], keepdims=1)
        flat = g.const(np.array([-1], dtype=np.int64))
        return g.op("Reshape", [g.op("Div", [summed, total]), flat])
    codes = np.asarray(est._y, dtype=np.int64)
    table = np.eye(len(est.classes_), dtype=np.float64)[codes]  # training row → one-hot class
    votes = g.op("Gather", [g.const(table), idx], axis=0)  # [N, k, C]
    weighted = g.op("Mul", [votes, g.op("Unsqueeze", [weights, axes2])])
    return g.op("Div", [g.op("ReduceSum", [weighted, axes1], keepdims=0), total])


def _width_of(member: ServableMember) -> int:
    return int(member.encoder.n_features_out_)


def _cast_node(x: str, name: str, single: bool) -> Any:
    from onnx import helper

    return helper.make_node("Cast", [x], [name], to=1 if single else 11)  # FLOAT / DOUBLE


def _mix(
    g: Graph,
    outputs: list[tuple[str, float]],
    trees: list[tuple[TreeParts, str, int, float]],
    task: str,
    n_classes: int,
) -> str:
    """The weighted mean of the members' outputs: ``outputs`` are (output, share) of the
    members with their own nodes, ``trees`` the members merged into one tree node; the
    shares sum to 1. One member alone: its output as it is."""
    if not trees and len(outputs) == 1:
        return outputs[0][0]
    parts = [merged_trees(g, trees, task, n_classes)[0]] if trees else []
    parts += [g.op("Mul", [out, g.const(share)]) for out, share in outputs]
    return parts[0] if len(parts) == 1 else g.op("Sum", parts)


def _tree_parts(
    members: Sequence[ServableMember], task: str, n_classes: int
) -> dict[int, TreeParts]:
    """The members (by index) whose trees go into one merged node: every HistGradientBoosting
    member, and the converted tree members when there are two or more (one alone keeps the
    converter's node, which already applies its link: fewer nodes; unless its classes
    hold enough trees to get a node each, ``trees.splits``)."""
    parts: dict[int, TreeParts] = {}
    for i, m in enumerate(members):
        if m.family == "hist_gradient_boosting":
            parts[i] = hist_parts(m.estimator)
    converted = [i for i, m in enumerate(members) if m.family in TREE_FAMILIES and i not in parts]
    alone = not parts and len(converted) == 1
    for i in converted:
        proto = convert_estimator(members[i].estimator, _width_of(members[i]), single=True)
        found = converted_parts(proto, task, n_classes)
        if found is None or (alone and splits([(found, 0)]) is None):
            continue  # unreadable, or alone with nothing to gain: the converter's node
        parts[i] = found
    return parts


def _encoder_key(enc: Any) -> Any:
    """Equal for encoders that encode alike (members trained on the same columns share
    the encoder's ops), else the encoder's identity."""
    try:
        return pickle.dumps((enc.mode, enc.plan_, enc.n_features_out_))
    except (AttributeError, pickle.PicklingError, TypeError):
        return id(enc)


_registered: list[bool] = []


def convert_estimator(estimator: Any, width: int, *, single: bool) -> Any:
    """The estimator alone as an ONNX model with one input (``X``: float32 when ``single``,
    else float64) and no ZipMap."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    _register_converters()
    kind = FloatTensorType if single else DoubleTensorType
    options: dict[int, dict[str, Any]] = {}
    if hasattr(estimator, "predict_proba") or hasattr(estimator, "classes_"):
        options[id(estimator)] = {"zipmap": False}
    with _options_as_given(estimator):
        proto = convert_sklearn(
            estimator,
            initial_types=[("X", kind([None, width]))],
            options=options,
            target_opset=dict(OPSET),
        )
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_[0], "tree_"):
        _missing_directions(proto, estimator.estimators_)
    return proto


_converting = threading.Lock()


@contextmanager
def _options_as_given(estimator: Any) -> Iterator[None]:
    """skl2onnx without its search for Pipelines in ``estimator``.

    ``convert_sklearn`` passes its options through ``_process_options`` twice, and each
    pass walks every attribute of the model (``enumerate_model_names``), the trees of a
    forest one by one, computed properties such as ``feature_importances_`` included: on
    a 100-tree forest 0.14 of the conversion's 0.18 s of CPU. The walk only copies a
    Pipeline's options to its last step, for a Pipeline whose id is a key of the options;
    ours have one key, the estimator's own id, so for an estimator that is not a Pipeline
    the walk returns the options unchanged (read in skl2onnx 1.20), and they are passed
    as given: the same graph (tests/export/test_export.py). A Pipeline, or a skl2onnx
    without the function, goes the library's way. One conversion at a time (a lock):
    the function is swapped in skl2onnx's modules for the duration of the call.
    """
    import skl2onnx._parse as parse
    import skl2onnx.convert as convert
    from sklearn.pipeline import Pipeline

    modules = [m for m in (convert, parse) if hasattr(m, "_process_options")]
    if isinstance(estimator, Pipeline) or len(modules) != 2:
        yield
        return

    def as_given(_model: Any, options: Any) -> Any:
        return options

    with _converting:
        saved = [m._process_options for m in modules]
        for m in modules:
            m._process_options = as_given
        try:
            yield
        finally:
            for m, fn in zip(modules, saved, strict=True):
                m._process_options = fn


def _missing_directions(proto: Any, trees: Sequence[Any]) -> None:
    """Send a missing value where scikit-learn sends it: skl2onnx 1.20 leaves
    ``nodes_missing_value_tracks_true`` at 0 for random/extra trees, whose nodes learned
    a direction for NaN (``tree_.missing_go_to_left``; the true branch is the left one)."""
    for node in proto.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        tree_ids, node_ids = attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints
        left = [
            int(trees[t].tree_.missing_go_to_left[n])
            for t, n in zip(tree_ids, node_ids, strict=True)
        ]
        if "nodes_missing_value_tracks_true" in attrs:
            del attrs["nodes_missing_value_tracks_true"].ints[:]
            attrs["nodes_missing_value_tracks_true"].ints.extend(left)
        else:
            from onnx import helper

            node.attribute.append(helper.make_attribute("nodes_missing_value_tracks_true", left))


def _register_converters() -> None:
    """LightGBM and XGBoost through onnxmltools' converters."""
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import lightgbm as lgb
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            lgb.LGBMClassifier, "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes, convert_lightgbm, options=options,
        )  # fmt: skip
        update_registered_converter(
            lgb.LGBMRegressor, "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes, convert_lightgbm,
        )  # fmt: skip
    except ImportError:
        pass
    try:
        import xgboost as xgb
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(
            xgb.XGBClassifier, "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes, convert_xgboost, options=options,
        )  # fmt: skip
        update_registered_converter(
            xgb.XGBRegressor, "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes, convert_xgboost,
        )  # fmt: skip
    except ImportError:
        pass
    _registered.append(True)
