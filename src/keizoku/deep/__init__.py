"""Neural networks in PyTorch, behind scikit-learn's protocol (decision 0020).

``TabularMLP`` is the zoo's ``torch_mlp`` family: an estimator over the
``TabularEncoder``'s ordinal matrix, with an embedding per category column.
``ImageCNN`` is a small image classifier over grayscale or RGB arrays. Among keizoku's layers
only ``keizoku.training`` imports this package; importing it does not import torch
(torch loads on the first fit or unpickle), and the names below load on first use, so
that ``keizoku.deep.spec`` (read with every ``keizoku.yaml``) does not import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keizoku.deep.cnn import ImageCNN
    from keizoku.deep.mlp import TabularMLP, bind_encoder, category_columns

__all__ = ["ImageCNN", "TabularMLP", "bind_encoder", "category_columns"]


def __getattr__(name: str) -> Any:
    if name == "ImageCNN":
        from keizoku.deep import cnn

        return cnn.ImageCNN
    if name in ("TabularMLP", "bind_encoder", "category_columns"):
        from keizoku.deep import mlp

        return getattr(mlp, name)
    raise AttributeError(f"module 'keizoku.deep' has no attribute {name!r}")
