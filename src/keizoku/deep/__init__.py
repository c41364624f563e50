"""Neural networks in PyTorch, behind scikit-learn's protocol (decision 0020).

``TabularMLP`` is the zoo's ``torch_mlp`` family: an estimator over the
``TabularEncoder``'s ordinal matrix, with an embedding per category column.
``ImageCNN`` is a small image classifier over grayscale arrays. Among keizoku's layers
only ``keizoku.training`` imports this package; importing it does not import torch
(torch loads on the first fit or unpickle).
"""

from __future__ import annotations

from keizoku.deep.cnn import ImageCNN
from keizoku.deep.mlp import TabularMLP, bind_encoder, category_columns

__all__ = ["ImageCNN", "TabularMLP", "bind_encoder", "category_columns"]
