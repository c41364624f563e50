"""The evaluation suite's trained models (breast cancer, wine, diabetes), plus one trained
on hostile names: a feature, a category and a sensitive group spelled as a script tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.conftest import (  # noqa: F401  (fixtures re-exported for this folder)
    Trained,
    _use_eval_home,
    biased_frame,
    binary,
    eval_home,
    multiclass,
    regression,
    train_frame,
)

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="session")
def hostile(eval_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:  # noqa: F811
    """``x1`` is renamed HOSTILE, one ``region`` level and one sensitive group are HOSTILE."""
    frame = biased_frame(n=600, seed=3).rename(columns={"x1": HOSTILE})
    frame["region"] = np.where(frame["region"] == "north", HOSTILE, frame["region"])
    frame["group"] = np.where(frame["group"] == "B", HOSTILE, frame["group"])
    return train_frame(
        tmp_path_factory.mktemp("hostile"),
        frame,
        "label",
        "ev-hostile",
        sensitive=["group"],
        overrides={"models": ["lightgbm"], "ensemble": False},
        home=eval_home,
    )
