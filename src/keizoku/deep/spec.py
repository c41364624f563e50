"""The ``images:`` section of ``keizoku.yaml``: what makes a project an image project.

``keizoku init DIR`` writes it for a folder of class subfolders (``source: folder``) and
``keizoku init LIST.csv`` for a CSV of image paths and labels (``source: csv``). ``classes``
and ``counts`` record what init found; the other keys are the CNN's training knobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keizoku.sections import Section

__all__ = ["ImagesSpec"]


class ImagesSpec(Section):
    """An image classification project (the images are read by ``keizoku.data.images``).

    ``size``: (height, width) every image is resized to. ``colour``: read as RGB (three
    channels) instead of grayscale; ``init`` sets it when the images have colour. ``holdout``: the
    share of images (per class, fixed by ``seed``) kept out of every version's training;
    a later version is gated against the champion on it. ``epochs``/``patience``: the
    CNN's early-stopped training; ``channels``: the widths ``max_trials`` searches in order.
    """

    source: Literal["folder", "csv"] = "folder"
    path_column: str = "path"
    size: tuple[int, int] = (8, 8)
    colour: bool = False
    classes: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    holdout: float = Field(default=0.2, gt=0.0, lt=0.9)
    epochs: int = Field(default=60, ge=1, le=10_000)
    patience: int = Field(default=10, ge=1)
    channels: list[int] = Field(default_factory=lambda: [32, 16, 64], min_length=1)
