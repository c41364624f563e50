"""Greedy ensemble selection (Caruana et al., 2004) on out-of-fold predictions."""

from __future__ import annotations

from collections import Counter

import numpy as np

from keizoku.training.cv import TrialResult
from keizoku.training.metrics import Metric

__all__ = ["greedy_ensemble"]


def greedy_ensemble(
    candidates: list[TrialResult], y: np.ndarray, metric: Metric, rounds: int = 25
) -> tuple[dict[int, int], float]:
    """Pick members with replacement to maximise ``metric`` of the averaged OOF predictions.

    Returns ``{trial number: count}`` (the weights) and the ensemble's oriented score.
    """
    preds = [c.oof for c in candidates if c.oof is not None]
    if not preds:
        return {}, float("-inf")
    chosen: list[int] = []
    total = np.zeros_like(preds[0])
    best_score = float("-inf")
    for _ in range(rounds):
        scores = [metric.oriented(y, (total + p) / (len(chosen) + 1)) for p in preds]
        j = int(np.argmax(scores))
        if chosen and scores[j] <= best_score:
            break
        chosen.append(j)
        total = total + preds[j]
        best_score = scores[j]
    counts = Counter(candidates[j].number for j in chosen)
    return dict(counts), best_score
