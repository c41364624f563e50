"""Feature pipeline: one fitted encoder shared by training and serving."""

from keizoku.features.encoder import TabularEncoder

__all__ = ["TabularEncoder"]
