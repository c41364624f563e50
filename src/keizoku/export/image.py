"""keizoku's image CNN (``keizoku.deep.ImageCNN`` inside an ``ImageModel``) as one ONNX graph.

Input ``pixels``: ``float [N, H, W]`` (grayscale) or ``float [N, H, W, 3]`` (RGB), the
image already at the model's size and scaled to [0, 1], as ``keizoku.data.images.load_image``
makes it. Outputs: ``probabilities`` (``double [N, k]``), ``label`` (``int64 [N]``, the class
index) and ``embedding`` (``float [N, hidden]``: the penultimate layer, what the monitor's
drift tests read).

The network is written out from its weights, as :mod:`keizoku.export.neural` writes the
MLP: each ``Conv2d`` with the ``BatchNorm2d`` after it folded in (eval mode), ``Relu``,
``MaxPool``, ``GlobalAveragePool`` for the adaptive average pool to 1×1, ``Flatten``,
``Gemm`` for the linear layers (dropout is the identity at inference), then a softmax. The
graph computes in float32, as PyTorch does: parity within ``NEURAL_TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keizoku.errors import UserInputError
from keizoku.export.graph import OPSET, Graph

__all__ = ["build_image_graph", "is_image_model"]


def is_image_model(model: Any) -> bool:
    """An image classifier (``keizoku.deep.images.ImageModel``): images in, not records."""
    return hasattr(model, "predict_images") and hasattr(model, "cnn")


def build_image_graph(model: Any, *, name: str = "keizoku") -> Any:
    """The ``onnx.ModelProto`` of an ``ImageModel`` (see the module docstring)."""
    from onnx import TensorProto, helper

    net = model.cnn.net_
    height, width = model.size
    g = Graph()
    if model.colour:
        shape: list[int | None] = [None, height, width, 3]
        x = g.op("Transpose", ["pixels"], perm=[0, 3, 1, 2])  # NHWC → NCHW
    else:
        shape = [None, height, width]
        x = g.op("Unsqueeze", ["pixels", g.const(np.array([1], dtype=np.int64))])
    embedding = _layers(g, list(net["body"]), x)
    g.nodes.append(helper.make_node("Identity", [embedding], ["embedding"]))
    logits = _layers(g, list(net["head"]), "embedding")
    probabilities = g.op("Cast", [g.op("Softmax", [logits], axis=1)], to=TensorProto.DOUBLE)
    g.nodes.append(helper.make_node("Identity", [probabilities], ["probabilities"]))
    g.nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
    k = len(model.classes or [])
    hidden = int(model.cnn.hidden)
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, k]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, hidden]),
        ],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid(d, v) for d, v in OPSET.items()]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="keizoku")
    proto.ir_version = 9
    return proto


def _layers(g: Graph, layers: list[Any], x: str) -> str:
    """``layers`` (a ``Sequential``'s modules, in order) applied to ``x`` as ONNX ops."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        kind = type(layer).__name__
        following = type(layers[i + 1]).__name__ if i + 1 < len(layers) else ""
        if kind == "Conv2d":
            norm = layers[i + 1] if following == "BatchNorm2d" else None
            x = _conv(g, layer, norm, x)
            i += 1 if norm is None else 2
            continue
        if kind == "Linear":
            weight, bias = _weights(layer.weight), _weights(layer.bias)
            x = g.op("Gemm", [x, g.const(weight.astype(np.float32)),
                              g.const(bias.astype(np.float32))], transB=1)  # fmt: skip
        elif kind == "ReLU":
            x = g.op("Relu", [x])
        elif kind == "MaxPool2d":
            x = _max_pool(g, layer, x)
        elif kind == "AdaptiveAvgPool2d" and _pair(layer.output_size) == (1, 1):
            x = g.op("GlobalAveragePool", [x])
        elif kind == "Flatten" and layer.start_dim == 1 and layer.end_dim == -1:
            x = g.op("Flatten", [x], axis=1)
        elif kind != "Dropout":  # dropout: the identity at inference
            raise UserInputError(
                f"ONNX export has no form for the image network's layer {layer!r}: keizoku "
                "exports Conv2d, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d(1), Flatten, "
                "Linear and Dropout. Serve this model with keizoku instead."
            )
        i += 1
    return x


def _conv(g: Graph, conv: Any, norm: Any, x: str) -> str:
    """``Conv`` with the batch norm after it (eval mode) folded into its weights and bias."""
    weight = _weights(conv.weight)  # [out, in, kh, kw]
    bias = _weights(conv.bias) if conv.bias is not None else np.zeros(weight.shape[0])
    if norm is not None:
        factor = _weights(norm.weight) / np.sqrt(_weights(norm.running_var) + float(norm.eps))
        weight = weight * factor[:, None, None, None]
        bias = (bias - _weights(norm.running_mean)) * factor + _weights(norm.bias)
    if isinstance(conv.padding, str):
        raise UserInputError(f"ONNX export needs a Conv2d with numeric padding, not {conv!r}.")
    ph, pw = _pair(conv.padding)
    return g.op(
        "Conv",
        [x, g.const(weight.astype(np.float32)), g.const(bias.astype(np.float32))],
        kernel_shape=list(_pair(conv.kernel_size)),
        pads=[ph, pw, ph, pw],
        strides=list(_pair(conv.stride)),
        dilations=list(_pair(conv.dilation)),
        group=int(conv.groups),
    )


def _max_pool(g: Graph, pool: Any, x: str) -> str:
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    ph, pw = _pair(pool.padding)
    return g.op(
        "MaxPool",
        [x],
        kernel_shape=list(_pair(pool.kernel_size)),
        strides=list(_pair(stride)),
        pads=[ph, pw, ph, pw],
        dilations=list(_pair(pool.dilation)),
        ceil_mode=int(bool(pool.ceil_mode)),
    )


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _weights(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().cpu().numpy(), dtype=np.float64)
