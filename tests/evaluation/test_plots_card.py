"""SVG helpers produce valid, labelled SVG; the card reads intended_use.md; its worst slices
lead with the segment that holds the planted errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keizoku.data.schema import Column, Schema
from keizoku.evaluation.card import DEFAULT_INTENDED_USE, intended_use, render_card
from keizoku.evaluation.metrics import worst_slices
from keizoku.reporting import charts as plots

SVG = "{http://www.w3.org/2000/svg}"


def _charts() -> list[str]:
    return [
        plots.line_chart(
            "roc",
            "ROC curve",
            [plots.Series("a & b", [0, 0.5, 1], [0, 0.8, 1]), plots.Series("c", [0, 1], [0, 1])],
            "False positive rate (fraction)",
            "True positive rate (fraction)",
            diagonal=True,
        ),
        plots.scatter_chart("s", "Predicted vs actual", [1, 2, 3], [1, 2.5, 2.9], "x (u)", "y (u)"),
        plots.bar_chart("b", "Importance <top>", ["f1", "f2"], [0.7, 0.3], "share", reference=0.5),
        plots.heatmap("h", "Confusion", [[5, 1], [2, 7]], ["no", "yes"], "Predicted", "True"),
        plots.histogram("r", "Residuals", [-1.0, 0.0, 0.5, 2.0, float("nan")], "residual (u)"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_every_chart_is_valid_svg_with_title_and_labels(index: int) -> None:
    svg = ET.fromstring(_charts()[index])
    assert svg.tag == f"{SVG}svg" and svg.get("class") == "chart"
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text
    texts = [t for t in svg.iter(f"{SVG}text")]
    assert any(t.get("class") == "chart-title" and t.text for t in texts)
    assert sum(t.get("class") == "axis-label" for t in texts) >= 1
    marks = [e for e in svg.iter() if e.tag in (f"{SVG}rect", f"{SVG}polyline", f"{SVG}circle")]
    assert marks


def test_ticks_are_round_numbers() -> None:
    assert plots._ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plots._ticks(-95, 310) == [0, 100, 200, 300]
    assert plots._ticks(-0.3, 0.25) == [-0.2, 0.0, 0.2]


def test_card_uses_intended_use_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert intended_use() == DEFAULT_INTENDED_USE
    (tmp_path / "intended_use.md").write_text("Rank loan applications for manual review.\n")
    card = render_card(
        {"project": "loans", "members": [{"family": "lightgbm", "weight": 1}]},
        {"n": 10, "metrics": {"roc_auc": 0.8}, "data_period": {"day": {"min": "a", "max": "b"}}},
        None,
        None,
        [{"version": 1, "aliases": ["champion"], "metric": "roc_auc", "cv_score": "0.8"}],
        2,
        intended_use(),
    )
    assert "## Intended use\nRank loan applications for manual review." in card
    assert "- Period (day): a to b" in card
    assert "Champion: version 1." in card
    assert "No sensitive column was declared" in card


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
