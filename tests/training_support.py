"""Small searches on scikit-learn's bundled sets, and one fold's inputs, for training tests."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.schema import infer_schema
from keizoku.features.encoder import TabularEncoder
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.cv import make_folds
from keizoku.training.search import SearchResult, run_search
from keizoku.training.zoo import FAMILIES, Family


def labelled(loaded: Any, target: str, names: list[str]) -> pd.DataFrame:
    """A bundled set's frame (``load_x(as_frame=True)``) with its class codes as ``names``."""
    frame = loaded.frame.rename(columns={"target": target})
    frame[target] = frame[target].map(dict(enumerate(names)))
    return frame


def searched(frame: pd.DataFrame, target: str, **cfg: Any) -> tuple[TrainingData, SearchResult]:
    """The training data of ``frame`` and a search on it with the ``train:`` keys ``cfg``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = TrainingData.build(frame, infer_schema(frame, target))
        return data, run_search(data, TrainSpec.model_validate({"budget": "120s", **cfg}))


def fold_inputs(
    data: TrainingData, family: str, k: int = 3
) -> tuple[Family, TabularEncoder, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A family, its encoder fitted on ``data``, the encoded rows and the first of k folds."""
    fam = FAMILIES[family]
    enc = TabularEncoder(data.schema.features, mode=fam.mode).fit(data.frame)
    split = make_folds(data.y, data.task, k, 0, None)[0]
    return fam, enc, enc.transform(data.frame), split
