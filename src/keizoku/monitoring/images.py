"""Drift on images: the monitor's numeric drift tests on what can be counted of an image.

An image is not a column the drift tests can read, so each image becomes numbers: its
statistics (``keizoku.data.images.image_stats``: brightness, contrast, dark share) and,
given a network with ``embed`` (``ImageCNN``, ``TabularMLP``), its penultimate-layer
activations ``emb_0 … emb_k`` — a shift the pixels' averages miss (new strokes, another
camera) moves the features the classifier reads. Each column then goes through
``compare_numeric`` with the reference sketch ``numeric_ref``, exactly as a table's
numeric feature does, under the same ``DriftConfig`` rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.images import image_stats
from keizoku.monitoring.drift import DriftConfig, FeatureDrift, compare_numeric, numeric_counts
from keizoku.monitoring.reference import numeric_ref

__all__ = ["image_columns", "image_drift"]


def image_columns(images: np.ndarray, model: Any = None) -> pd.DataFrame:
    """Per image: its statistics and, with ``model``, its embedding ``emb_0 … emb_k``."""
    frame = image_stats(images)
    if model is not None:
        emb = model.embed(images)
        frame = pd.concat(
            [frame, pd.DataFrame(emb, columns=[f"emb_{j}" for j in range(emb.shape[1])])], axis=1
        )
    return frame


def image_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig | None = None
) -> list[FeatureDrift]:
    """One verdict per column of ``image_columns`` (reference vs current images)."""
    cfg = cfg or DriftConfig()
    verdicts = []
    for name in reference.columns:
        ref = numeric_ref(reference[name])
        counts = numeric_counts(current[name].to_numpy(dtype=float), ref)
        verdicts.append(compare_numeric(name, ref, counts, cfg))
    return verdicts
