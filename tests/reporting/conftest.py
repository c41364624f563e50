"""The evaluation suite's trained models (breast cancer, wine, diabetes), plus one trained
on hostile names: a feature, a category and a sensitive group spelled as a script tag.
All are trained once per run, in one home, by ``evaluation/conftest.py``."""

from __future__ import annotations

from evaluation.conftest import (  # noqa: F401  (fixtures re-exported for this folder)
    HOSTILE,
    HOSTILE_ESCAPED,
    Trained,
    _use_eval_home,
    binary,
    eval_home,
    multiclass,
    regression,
    shared_model,
)

# ``x1`` is renamed HOSTILE, one ``region`` level and one sensitive group are HOSTILE
hostile = shared_model("hostile")
