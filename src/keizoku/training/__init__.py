"""Training: metrics, the model zoo, the search, ensembles, and the fitted model.

``KeizokuModel`` loads on first use, so that ``keizoku.training.config`` (the spec's
``train:`` section, read with every ``keizoku.yaml``) does not import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keizoku.training.model import KeizokuModel

__all__ = ["KeizokuModel"]


def __getattr__(name: str) -> Any:
    if name == "KeizokuModel":
        from keizoku.training import model

        return model.KeizokuModel
    raise AttributeError(f"module 'keizoku.training' has no attribute {name!r}")
