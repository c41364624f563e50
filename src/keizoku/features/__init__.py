"""Feature pipeline: one fitted encoder shared by training and serving.

``TabularEncoder`` loads on first use, so that the text tokenizer (``features.text``),
read when a project with text columns is inspected, does not import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keizoku.features.encoder import TabularEncoder

__all__ = ["TabularEncoder"]


def __getattr__(name: str) -> Any:
    if name == "TabularEncoder":
        from keizoku.features.encoder import TabularEncoder

        return TabularEncoder
    raise AttributeError(f"module 'keizoku.features' has no attribute {name!r}")
