"""A small image folder still trains: batch norm needs several batches per epoch.

With the default batch of 64, a folder of a few dozen images made one batch per epoch, so
batch norm's running statistics (what evaluation mode uses) got one update per epoch and the
network answered at chance outside training. The batch now shrinks with the data (at least
eight steps an epoch, never above the configured size).
"""

from __future__ import annotations

import numpy as np
import pytest

from keizoku.deep.cnn import ImageCNN, step_size
from kzsupport import need_module

need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

SIDE, SQUARE = 16, 4
CORNERS = {0: (2, 2), 1: (10, 10)}


def squares(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, (r, c) in CORNERS.items():
        for _ in range(n_per_class):
            img = np.clip(rng.normal(0.1, 0.05, (SIDE, SIDE)), 0, 1)
            img[r : r + SQUARE, c : c + SQUARE] = rng.uniform(0.75, 0.95)
            xs.append(img)
            ys.append(label)
    return np.asarray(xs, dtype=np.float32), np.asarray(ys)


def test_a_folder_of_two_dozen_images_learns_an_easy_rule() -> None:
    x, y = squares(12, seed=0)
    model = ImageCNN(seed=0)  # early stopping on a validation set, as training does
    model.fit(x, y, eval_set=squares(5, seed=2))
    new_x, new_y = squares(20, seed=1)
    assert (model.predict(new_x) == new_y).mean() >= 0.9


@pytest.mark.parametrize(("rows", "configured", "expected"),
                         [(24, 64, 3), (60, 64, 8), (200, 64, 25), (512, 64, 64),
                          (10_000, 64, 64), (100, 4, 4)])  # fmt: skip
def test_the_batch_shrinks_with_the_data_never_past_the_configured_size(
    rows: int, configured: int, expected: int
) -> None:
    assert step_size(rows, configured) == expected
