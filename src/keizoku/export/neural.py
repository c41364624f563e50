"""keizoku's PyTorch tabular MLP (``keizoku.deep.TabularMLP``) as ONNX ops, built here.

The network is four kinds of layers (embeddings, linear, batch norm in eval mode, ReLU;
dropout is the identity at inference), so it is written out with ``Gather``/``MatMul``/
``Add``/``Relu`` from its weights, batch norm folded into the preceding linear layer, in
float64: no exporter to trust (torch.onnx's default exporter needs onnxscript; the
TorchScript one is deprecated), and no torch at export time beyond reading the weights.
The inputs are made as ``TabularMLP._inputs`` makes them: standardised, clipped numbers
with missing indicators, and per category column the code 0 (missing), 1 (unseen) or
2 + the level's position. PyTorch computes in float32, so the graph (float64) differs
from the registered model by float32 rounding: the parity check allows 1e-4 for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keizoku.export.graph import Graph

__all__ = ["NEURAL_FAMILIES", "mlp"]

NEURAL_FAMILIES = {"torch_mlp"}
CLIP = 5.0  # keizoku.deep.mlp.CLIP (kept equal by tests/export/test_neural_export.py)


def mlp(g: Graph, est: Any, x: str, task: str) -> str:
    """The MLP's output from the encoded matrix ``x`` (double [N, width]): probabilities
    [N, k] (softmax of the logits) or values [N] (un-standardised)."""
    net = est.net_
    parts = [_numbers(g, est, x)] if len(est.num_columns_) or len(est.indicators_) else []
    for emb, col, values in zip(net.embeddings, est.cat_columns_, est.cat_values_, strict=True):
        table = emb.weight.detach().cpu().numpy().astype(np.float64)
        parts.append(g.op("Gather", [g.const(table), _codes(g, x, int(col), values)], axis=0))
    h = parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)
    layers = list(net.body)
    for i in range(0, len(layers), 4):  # Linear, BatchNorm1d, ReLU, Dropout
        weight, bias = _folded(layers[i], layers[i + 1])
        h = g.op("Relu", [g.op("Add", [g.op("MatMul", [h, g.const(weight)]), g.const(bias)])])
    weight, bias = _folded(net.head, None)
    out = g.op("Add", [g.op("MatMul", [h, g.const(weight)]), g.const(bias)])
    if task == "regression":
        flat = g.op("Reshape", [out, g.const(np.array([-1], dtype=np.int64))])
        scaled = g.op("Mul", [flat, g.const(np.float64(est.y_scale_))])
        return g.op("Add", [scaled, g.const(np.float64(est.y_mean_))])
    return g.op("Softmax", [out], axis=1)


def _numbers(g: Graph, est: Any, x: str) -> str:
    """Standardised numbers (median-imputed, clipped at ±CLIP) and missing indicators."""
    cols = g.const(np.array(est.num_columns_, dtype=np.int64))
    num = g.op("Gather", [x, cols], axis=1)
    missing = g.op("IsNaN", [num])
    filled = g.op("Where", [missing, g.const(np.asarray(est.median_, dtype=np.float64)), num])
    mean = g.const(np.asarray(est.mean_, dtype=np.float64))
    scale = g.const(np.asarray(est.scale_, dtype=np.float64))
    scaled = g.op("Div", [g.op("Sub", [filled, mean]), scale])
    clipped = g.op("Clip", [scaled, g.const(np.float64(-CLIP)), g.const(np.float64(CLIP))])
    # TabularMLP feeds float32: round as it does, then compute on in float64
    clipped = g.op("Cast", [g.op("Cast", [clipped], to=1)], to=11)
    if not len(est.indicators_):
        return clipped
    flags = g.op("Cast", [missing], to=11)
    chosen = g.op("Gather", [flags, g.const(np.asarray(est.indicators_, dtype=np.int64))], axis=1)
    return g.op("Concat", [clipped, chosen], axis=1)


def _codes(g: Graph, x: str, col: int, values: np.ndarray) -> str:
    """int64 [N]: 0 when missing, 1 when not among ``values``, else 2 + its position."""
    v = g.op("Gather", [x, g.const(np.array([col], dtype=np.int64))], axis=1)  # [N, 1]
    nan = g.op("IsNaN", [v])
    if not len(values):
        code = g.op("Where", [nan, g.const(np.int64(0)), g.const(np.int64(1))])
    else:
        hits = g.op("Cast", [g.op("Equal", [v, g.const(np.asarray(values)[None, :])])], to=11)
        found = g.op("ReduceMax", [hits, g.const(np.array([1], dtype=np.int64))], keepdims=1)
        where = g.op("ArgMax", [hits], axis=1, keepdims=1)
        seen = g.op("Greater", [found, g.const(0.0)])
        position = g.op("Add", [where, g.const(np.int64(2))])
        known = g.op("Where", [seen, position, g.const(np.int64(1))])
        code = g.op("Where", [nan, g.const(np.int64(0)), known])
    return g.op("Reshape", [code, g.const(np.array([-1], dtype=np.int64))])


def _folded(linear: Any, norm: Any) -> tuple[np.ndarray, np.ndarray]:
    """(W [in, out], b [out]) of ``linear`` followed by ``norm`` (eval mode) when given."""
    weight = linear.weight.detach().cpu().numpy().astype(np.float64).T
    bias = linear.bias.detach().cpu().numpy().astype(np.float64)
    if norm is None:
        return weight, bias
    mean = norm.running_mean.detach().cpu().numpy().astype(np.float64)
    var = norm.running_var.detach().cpu().numpy().astype(np.float64)
    gamma = norm.weight.detach().cpu().numpy().astype(np.float64)
    beta = norm.bias.detach().cpu().numpy().astype(np.float64)
    factor = gamma / np.sqrt(var + float(norm.eps))
    return weight * factor, (bias - mean) * factor + beta
