"""keizoku (継続, "continuation"): from a raw table to a monitored model that keeps improving.

The public surface is small; see ``__all__``. Heavy modules load lazily: ``import keizoku``
imports neither pandas nor the model zoo; ``keizoku.train``, ``keizoku.cluster`` and
``keizoku.load`` (from :mod:`keizoku.api`) and the scikit-learn estimators
(:mod:`keizoku.sklearn`) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keizoku._lazy import lazy_names
from keizoku.errors import KeizokuError

if TYPE_CHECKING:
    from keizoku.api import Predictor, cluster, load, train
    from keizoku.sklearn import KeizokuClassifier, KeizokuRegressor

__version__ = "0.1.0"
__all__ = [
    "KeizokuClassifier",
    "KeizokuError",
    "KeizokuRegressor",
    "Predictor",
    "__version__",
    "cluster",
    "load",
    "train",
]

_LAZY = {
    "train": "keizoku.api",
    "cluster": "keizoku.api",
    "load": "keizoku.api",
    "Predictor": "keizoku.api",
    "KeizokuClassifier": "keizoku.sklearn",
    "KeizokuRegressor": "keizoku.sklearn",
}

__getattr__ = lazy_names(__name__, _LAZY)
