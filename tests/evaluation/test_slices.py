"""Worst slices on planted errors: the segment that holds them comes first, counted right."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keizoku.data.schema import Column, Schema
from keizoku.evaluation.metrics import worst_slices


def test_the_planted_segment_leads_with_its_count_and_error() -> None:
    city = ["Osaka"] * 50 + ["Kyoto"] * 30 + ["Nara"] * 20
    size = list(range(100))  # five quantile bins of twenty rows each
    errors = np.array([0.0] * 50 + [1.0] * 10 + [0.0] * 20 + [1.0] * 15 + [0.5] * 5)
    frame = pd.DataFrame({"city": city, "size": size})
    schema = Schema(
        columns=[
            Column(name="city", kind="categorical", dtype="str"),
            Column(name="size", kind="numeric", dtype="int"),
        ]
    )
    found = worst_slices(frame, schema, errors, "binary", min_support=10)
    assert found["overall_error"] == errors.mean() and found["rows"] == 100
    first, second = found["slices"][:2]  # a tie: in the order of the columns
    assert first == {"feature": "city", "segment": "Nara", "count": 20, "error": 0.875}
    assert second == {"feature": "size", "segment": "79.2 – 99", "count": 20, "error": 0.875}
    kyoto = [s for s in found["slices"] if s["segment"] == "Kyoto"]
    assert kyoto == [{"feature": "city", "segment": "Kyoto", "count": 30, "error": 1 / 3}]
    assert all(s["count"] >= 10 for s in found["slices"])
    ordered = [(-s["error"], -s["count"]) for s in found["slices"]]
    assert ordered == sorted(ordered)
