"""Training: metrics, the model zoo, the search, ensembles, and the fitted model."""

from keizoku.training.model import KeizokuModel

__all__ = ["KeizokuModel"]
