"""The log loss the search, the evidence and the gates score with is scikit-learn's own
number, to the last bit, and scikit-learn still checks, warns and raises for any other input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from keizoku.training.metrics import METRICS

log_loss = METRICS["log_loss"]


def _sklearn(y: np.ndarray, p: np.ndarray) -> float:
    """What the metric computed before: scikit-learn on the clipped probabilities."""
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    return float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=range(p.shape[1])))


@st.composite
def _predictions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Class codes and probabilities as a fold's model gives them: some rows certain (the
    clipping matters there), binary ones sometimes as the positive class's column only."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, k = draw(st.integers(1, 300)), draw(st.integers(2, 7))
    p = rng.dirichlet(np.full(k, draw(st.floats(0.05, 3.0))), n)
    certain = rng.random(n) < draw(st.floats(0.0, 0.5))
    p[certain] = np.eye(k)[rng.integers(0, k, certain.sum())]
    y = rng.integers(0, k, n)
    if k == 2 and draw(st.booleans()):
        return y, p[:, 1]
    return y, p


@settings(max_examples=300, deadline=None)
@given(_predictions())
def test_log_loss_is_scikit_learns_number(case: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = case
    assert log_loss(y, p) == _sklearn(y, p)


def test_other_inputs_are_still_checked_by_scikit_learn() -> None:
    y = np.array([0, 1, 2, 1])
    p = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="not belonging to the passed labels"):
        log_loss(np.array([0, 1, 3, 1]), p)  # a code past the columns
    nan = p.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        log_loss(y, nan)
    with pytest.warns(UserWarning, match="do not sum to one"):
        assert log_loss(y, p * 0.9) == _sklearn(y, p * 0.9)
    labels = np.array(["a", "b", "c", "b"])  # not codes: scikit-learn's own path
    with pytest.raises(ValueError):
        log_loss(labels, p)
    as_float = y.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert log_loss(as_float, p) == _sklearn(as_float, p)
