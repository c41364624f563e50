"""The array form of resampled metrics equals scikit-learn's value on the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from keizoku.lifecycle.gates import paired_bootstrap
from keizoku.lifecycle.resample import index_blocks, resampled_scores
from keizoku.training.metrics import get_metric


def _data(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(0, 1, n)
        return y, y + rng.normal(0, 0.7, n)
    k = 2 if task == "binary" else 4
    codes = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), codes] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p = np.round(p, 2)  # rounding makes ties, which AUC must count as halves
    p[:, -1] = 1 - p[:, :-1].sum(axis=1)  # and the rows still sum to one
    return codes, p


CASES = [
    ("binary", "roc_auc"),
    ("binary", "log_loss"),
    ("binary", "accuracy"),
    ("multiclass", "roc_auc"),
    ("multiclass", "log_loss"),
    ("multiclass", "accuracy"),
    ("regression", "rmse"),
    ("regression", "mae"),
    ("regression", "r2"),
]


@pytest.mark.parametrize(("task", "name"), CASES)
def test_each_resample_matches_scikit_learn(task: str, name: str) -> None:
    y, p = _data(task, 60, seed=len(name))
    metric = get_metric(name, task)  # type: ignore[arg-type]
    idx = np.random.default_rng(0).integers(0, len(y), (40, len(y)))
    fast = resampled_scores(metric, y, p, idx)
    assert fast is not None
    for row, value in zip(idx, fast, strict=True):
        try:
            expected = metric.oriented(y[row], p[row])
        except ValueError:  # scikit-learn refuses a resample missing a class
            assert np.isnan(value)
            continue
        assert value == pytest.approx(expected, abs=1e-9)


def test_a_resample_missing_a_class_is_undefined_not_a_number() -> None:
    y = np.array([0, 1, 2, 1])
    p = np.eye(3)[[0, 1, 2, 1]]
    idx = np.array([[1, 1, 3, 3], [0, 1, 2, 3]])
    scores = resampled_scores(get_metric("roc_auc", "multiclass"), y, p, idx)
    assert scores is not None
    assert np.isnan(scores[0]) and scores[1] == pytest.approx(1.0)


def test_metrics_without_an_array_form_fall_back_to_the_loop() -> None:
    y, p = _data("binary", 200, seed=3)
    metric = get_metric("f1", "binary")
    assert resampled_scores(metric, y, p, np.zeros((2, 200), dtype=int)) is None
    stats = paired_bootstrap(metric, y, p, p, n_boot=50)
    assert stats["delta"] == 0 and stats["low"] == 0 and stats["high"] == 0


@pytest.mark.parametrize(
    ("n", "n_boot", "rows_per_block"),
    [
        (1_000_000, 10, [4, 4, 2]),  # 4 resamples of a million rows fill a block; a remainder
        (9_000, 1000, [444, 444, 112]),  # hundreds of resamples a block
    ],
    ids=["a million rows", "nine thousand rows"],
)
def test_index_blocks_cover_every_resample_in_bounded_blocks(
    n: int, n_boot: int, rows_per_block: list[int]
) -> None:
    """Each block is read and dropped, as the gates do: never all resamples in memory."""
    rng = np.random.default_rng(0)
    shapes = []
    for block in index_blocks(rng, n, n_boot):
        assert block.size <= 4_000_000 and 0 <= block.min() and block.max() < n
        shapes.append(block.shape)
    assert shapes == [(k, n) for k in rows_per_block]
