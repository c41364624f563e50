"""Reports for a binary, a multiclass and a regression model, opened in headless Chromium."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keizoku.cli import app
from keizoku.evaluation.report import SECTIONS, load_evidence, write_report
from keizoku.registry.models import get_version, version_artifact
from kzsupport import chromium_browser

from .conftest import Trained

CLASSIFIER_CHARTS = ("confusion-cv", "roc-cv", "pr-cv", "calibration-cv")
REGRESSION_CHARTS = ("predicted-actual-cv", "residuals-cv", "residual-hist-cv")
COMMON_CHARTS = ("learning-curve", "slices-cv", "importance")


@pytest.fixture(scope="module")
def browser() -> Iterator[Callable[[], Any]]:
    """This file's headless Chromium, started when the first report is opened (each test
    checks its HTML first) and shared by the reports, each in a fresh page of its own."""
    with contextlib.ExitStack() as stack:
        started: list[Any] = []

        def get() -> Any:
            if not started:
                started.append(stack.enter_context(chromium_browser()))
            return started[0]

        yield get


def _open_in_chromium(browser: Callable[[], Any], path: Path) -> dict[str, object]:
    """Section ids, headings and every chart's bounding box, as the browser lays them out."""
    page = browser().new_page()  # its own context: nothing kept from another report
    try:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        info = page.evaluate(
            """() => ({
              sections: [...document.querySelectorAll('section')].map(s => s.id),
              headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
              charts: Object.fromEntries([...document.querySelectorAll('svg.chart')].map(
                s => { const b = s.getBoundingClientRect();
                       return [s.dataset.chart, [b.width, b.height,
                               s.querySelectorAll('rect,polyline,circle').length]]; })),
              titles: [...document.querySelectorAll('svg.chart text.chart-title')]
                        .map(t => t.textContent),
              axisLabels: document.querySelectorAll('svg.chart text.axis-label').length,
            })"""
        )
    finally:
        page.context.close()
    info["requests"] = [u for u in requests if not u.startswith("file://")]
    return info


def _check_rendered(info: dict[str, object], expected_charts: tuple[str, ...]) -> None:
    assert info["sections"] == list(SECTIONS)
    assert info["requests"] == []  # self-contained: nothing fetched from the network
    charts = info["charts"]
    assert isinstance(charts, dict)
    for chart in expected_charts:
        width, height, marks = charts[chart]
        assert width > 100 and height > 100, chart
        assert marks > 0, f"chart {chart} draws nothing"
    assert all(t.strip() for t in info["titles"])  # type: ignore[union-attr,attr-defined]
    assert int(info["axisLabels"]) >= len(expected_charts)  # type: ignore[call-overload]


def test_binary_report_with_data_renders_every_section(
    binary: Trained, tmp_path: Path, browser: Callable[[], Any]
) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", binary.ref, "--data", str(binary.csv), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "cdn" not in html.lower() and "<script" not in html
    info = _open_in_chromium(browser, out)
    data_charts = tuple(c.replace("-cv", "-data") for c in CLASSIFIER_CHARTS)
    _check_rendered(info, CLASSIFIER_CHARTS + data_charts + COMMON_CHARTS + ("fairness-cv-site",))
    assert "Threshold table" in html
    assert "data file ev-cancer.csv (569 rows)" in html


def test_multiclass_report_renders(
    multiclass: Trained, tmp_path: Path, browser: Callable[[], Any]
) -> None:
    out = write_report(multiclass.ref, tmp_path / "wine.html")
    info = _open_in_chromium(browser, out)
    _check_rendered(info, CLASSIFIER_CHARTS + COMMON_CHARTS)
    evaluation = load_evidence(multiclass.ref).evaluation
    assert evaluation is not None
    assert sorted(evaluation["roc"]) == ["barbera", "barolo", "grignolino"]  # one-vs-rest
    assert len(evaluation["confusion"]["matrix"]) == 3


def test_regression_report_renders(
    regression: Trained, tmp_path: Path, browser: Callable[[], Any]
) -> None:
    out = write_report(regression.ref, tmp_path / "diabetes.html", data=str(regression.csv))
    info = _open_in_chromium(browser, out)
    _check_rendered(info, REGRESSION_CHARTS + COMMON_CHARTS + ("slices-data",))
    html = out.read_text()
    assert "Predicted target (target units)" in html
    assert "mean absolute error" in html


def test_evidence_is_saved_with_the_version_and_bounded(binary: Trained) -> None:
    evaluation = json.loads(version_artifact(binary.ref, "evaluation.json").read_text())
    assert evaluation["source"].startswith("cross-validation")
    assert evaluation["n"] == 569
    assert evaluation["metrics"]["roc_auc"] > 0.9
    assert evaluation["evidence_seconds"] < 20
    curve = evaluation["learning_curve"]
    assert curve["points"] and curve["points"][0]["fraction"] == 0.2
    assert [p["rows"] for p in curve["points"]] == sorted(p["rows"] for p in curve["points"])
    for name in ("importance.json", "fairness.json", "model_card.md", "background.json"):
        assert version_artifact(binary.ref, name).stat().st_size > 0


def test_model_card_has_fingerprint_metrics_fairness_and_lineage(binary: Trained) -> None:
    card = version_artifact(binary.ref, "model_card.md").read_text()
    tags = get_version(binary.ref).tags
    for heading in (
        "## Intended use",
        "## Data",
        "## Metrics",
        "## Worst slices",
        "## Fairness",
        "## Explanations: top features",
        "## Limits",
        "## Version lineage",
    ):
        assert heading in card
    assert tags["keizoku.data_sha256"] in card
    assert tags["keizoku.schema_sha256"] in card
    assert f"# Model card: ev-cancer:{binary.version}" in card
    assert "| site | demographic_parity_difference |" in card
    assert "<what decision this model supports" in card  # placeholder for the owner


def test_report_on_data_without_target_names_the_column(binary: Trained, tmp_path: Path) -> None:
    unlabeled = tmp_path / "nolabel.csv"
    binary.frame.drop(columns=["target"]).to_csv(unlabeled, index=False)
    result = CliRunner().invoke(
        app, ["report", binary.ref, "--data", str(unlabeled), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code != 0
    assert "has no target column 'target'" in str(result.exception)
