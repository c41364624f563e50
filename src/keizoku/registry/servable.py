"""What a registered model offers: the type :func:`~keizoku.registry.load_model` returns.

The registry sits below training in the layers, so it cannot name
``keizoku.training.model.KeizokuModel``; it names what every caller uses instead.
``KeizokuModel`` satisfies both protocols (mypy checks it wherever one is passed as
the other; ``tests/conformance`` checks every model family at run time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # types only: importing the registry must not load scikit-learn
    import numpy as np
    import pandas as pd

    from keizoku.data.schema import Schema
    from keizoku.features.encoder import TabularEncoder

__all__ = ["ServableMember", "ServableModel"]


class ServableMember(Protocol):
    """One fitted member of a model: its family, encoder and estimator."""

    @property
    def family(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def encoder(self) -> TabularEncoder: ...
    @property
    def estimator(self) -> Any: ...  # a scikit-learn/LightGBM/XGBoost estimator
    @property
    def weight(self) -> float: ...


@runtime_checkable
class ServableModel(Protocol):
    """A loaded, hash-verified model: its schema and the ways to score with it."""

    @property
    def schema(self) -> Schema: ...
    @property
    def task(self) -> str: ...
    @property
    def classes(self) -> list[Any] | None: ...
    @property
    def metric(self) -> str: ...
    @property
    def members(self) -> Sequence[ServableMember]: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def info(self) -> dict[str, Any]: ...  # how it was trained: cv_score, folds, …

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (n×k) for classifiers, values (n) for regression."""
        ...

    def predict_raw_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Like ``predict_raw``, from plain dicts (the serving fast path)."""
        ...

    def labels(self, raw: np.ndarray) -> list[Any]:
        """The class label (or value) of each row of ``predict_raw``'s output."""
        ...

    def predict(self, frame: pd.DataFrame) -> list[Any]: ...
    def predict_records(self, records: list[dict[str, Any]]) -> list[Any]: ...

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus ``prediction`` and a ``proba_<class>`` column per class."""
        ...
