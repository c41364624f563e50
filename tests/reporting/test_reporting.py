"""The reporting package: one escaper, one stylesheet, strict contexts, every page offline.

The three pages are rendered from real objects: a profile of a real table, the evidence
of models trained by the evaluation fixtures, and the drift of planted shifts counted by
DuckDB.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pandas as pd
import pytest

import keizoku
from keizoku.data.profile import profile_context, profile_frame, write_profile_html
from keizoku.data.schema import infer_schema
from keizoku.evaluation.report import (
    SECTIONS,
    evaluate_file,
    load_evidence,
    render_report,
    report_context,
)
from keizoku.monitoring.drift import DriftConfig
from keizoku.monitoring.monitor import MonitorReport, drift_of_source
from keizoku.monitoring.reference import Reference, categorical_ref, numeric_ref
from keizoku.monitoring.report import drift_context, render_html, write_html
from keizoku.reporting import TEMPLATES, charts, render

from .conftest import HOSTILE, HOSTILE_ESCAPED, Trained

SRC = Path(keizoku.__file__).parent
CLASSIFIER_CHARTS = ("confusion-cv", "roc-cv", "pr-cv", "calibration-cv")
REGRESSION_CHARTS = ("predicted-actual-cv", "residuals-cv", "residual-hist-cv")
COMMON_CHARTS = ("learning-curve", "slices-cv", "importance")


class _Outline(HTMLParser):
    """Section ids, chart ids and the number of <style> elements of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.charts: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(str(a.get("id")))
        elif tag == "svg" and a.get("class") == "chart":
            self.charts.append(str(a.get("data-chart")))
        elif tag == "style":
            self.styles += 1


def _outline(html: str) -> _Outline:
    parser = _Outline()
    parser.feed(html)
    return parser


def _base_css() -> str:
    text = (TEMPLATES / "base.html.j2").read_text()
    return text.split("<style>")[1].split("</style>")[0]


def _assert_offline_and_well_formed(html: str) -> None:
    assert "<script" not in html.lower()
    without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_ns and "https://" not in without_ns
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        root = ET.fromstring(svg)  # each chart is well-formed XML, entities included
        assert root.find("{http://www.w3.org/2000/svg}title") is not None


# ---------------------------------------------------------------- the three pages


def _profile_page(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            HOSTILE: rng.normal(size=200),
            "colour": rng.choice(["red", HOSTILE], 200),
            "y": rng.choice([0, 1], 200),
        }
    )
    schema = infer_schema(frame, "y")
    out = write_profile_html(profile_frame(frame, schema), frame, schema, tmp_path / "p.html")
    return out.read_text(encoding="utf-8")


def _monitor_report(name: str = "m", shift: float = 1.0) -> MonitorReport:
    """Drift of a planted shift in ``x`` (and a HOSTILE feature and level that do not move)."""
    rng = np.random.default_rng(4)
    levels = ["u", HOSTILE]
    train = pd.DataFrame(
        {"x": rng.normal(0, 1, 5000), "h": rng.normal(0, 1, 5000), "c": rng.choice(levels, 5000)}
    )
    hours = np.repeat([0.0, 3600.0, 7200.0], 700)
    cur = pd.DataFrame(
        {
            "bucket": hours,
            "f__x": rng.normal(shift, 1, len(hours)),
            "f__h": rng.normal(0, 1, len(hours)),
            "f__c": rng.choice(levels, len(hours)),
        }
    )
    ref = Reference(
        created=0, n_rows=5000, task="binary", target="y", metric="roc_auc",
        greater_is_better=True, cv_score=0.9,
        features={"x": numeric_ref(train["x"]), HOSTILE: numeric_ref(train["h"]),
                  "c": categorical_ref(train["c"])},
    )  # fmt: skip
    con = duckdb.connect()
    con.register("cur", cur)
    cfg = DriftConfig()
    columns = {"x": "f__x", HOSTILE: "f__h", "c": "f__c"}
    n, feats, pred, timeline = drift_of_source(con, "SELECT * FROM cur", ref, columns, None, cfg)
    return MonitorReport(
        model=name, version=3, source=f"file {HOSTILE}.csv", since=None, until=7200.0,
        n_rows=n, features=feats, prediction=pred, performance=None, bucket_s=3600.0,
        timeline=timeline, config=cfg,
    )  # fmt: skip


def _evaluation_page(trained: Trained) -> str:
    return render_report(load_evidence(trained.ref))


def test_hostile_names_are_escaped_on_the_profile_page(tmp_path: Path) -> None:
    html = _profile_page(tmp_path)
    _assert_offline_and_well_formed(html)
    assert f'data-column="{HOSTILE_ESCAPED}"' in html  # the chart of the hostile column
    assert f"<td>{HOSTILE_ESCAPED}</td>" in html  # its row in the columns table
    bars = re.search(r'<svg class="chart" data-column="colour".*?</svg>', html, re.S)
    assert bars is not None and HOSTILE_ESCAPED in bars.group(0)  # the hostile category


def test_hostile_names_are_escaped_on_the_evaluation_page(hostile: Trained) -> None:
    html = _evaluation_page(hostile)
    _assert_offline_and_well_formed(html)
    assert _outline(html).sections == list(SECTIONS)
    fairness = html.split('<section id="fairness">')[1].split("</section>")[0]
    assert f"<td>{HOSTILE_ESCAPED}</td>" in fairness  # the sensitive group's row
    importance = html.split('<section id="importance">')[1].split("</section>")[0]
    assert HOSTILE_ESCAPED in importance  # the hostile feature's bar
    slices = html.split('<section id="slices">')[1].split("</section>")[0]
    assert HOSTILE_ESCAPED in slices  # the hostile region level or feature


def test_hostile_names_are_escaped_on_the_drift_page(tmp_path: Path) -> None:
    out = write_html(_monitor_report(name=HOSTILE), tmp_path / "drift.html")
    html = out.read_text(encoding="utf-8")
    _assert_offline_and_well_formed(html)
    assert f"<title>Drift report: {HOSTILE_ESCAPED} v3</title>" in html
    assert f"<td>{HOSTILE_ESCAPED}</td>" in html  # the feature's row
    assert f'data-feature="{HOSTILE_ESCAPED}"' in html  # its panel
    assert f"from file {HOSTILE_ESCAPED}.csv" in html
    assert not list(tmp_path.glob(".drift.html.tmp-*"))  # written atomically


# ---------------------------------------------------------------- one template frame


def test_every_page_has_the_base_css_once_and_no_css_of_its_own(
    binary: Trained, tmp_path: Path
) -> None:
    css = _base_css()
    assert "svg.chart rect.bar" in css
    pages = {
        "profile": _profile_page(tmp_path),
        "evaluation": _evaluation_page(binary),
        "drift": render_html(_monitor_report()),
    }
    for page, html in pages.items():
        assert _outline(html).styles == 1, page
        assert html.count(css) == 1, page
        assert ' style="' not in html, page  # no inline style: the base CSS is the only one
        assert f"Written by keizoku {keizoku.__version__}" in html, page
        assert html.startswith("<!DOCTYPE html>"), page


@pytest.mark.parametrize(
    ("page", "key"),
    [("profile", "columns"), ("evaluation", "slices"), ("drift", "panels"), ("drift", "title")],
)
def test_a_key_missing_from_the_context_is_an_error_naming_it(
    page: str, key: str, binary: Trained
) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    contexts = {
        "profile": lambda: profile_context(profile_frame(frame, infer_schema(frame, "y")), frame),
        "evaluation": lambda: report_context(load_evidence(binary.ref)),
        "drift": lambda: drift_context(_monitor_report()),
    }
    context = contexts[page]()
    render(page, context)  # type: ignore[arg-type]  # complete: renders
    del context[key]
    with pytest.raises(jinja2.UndefinedError, match=f"'{key}' is undefined"):
        render(page, context)  # type: ignore[arg-type]


def test_a_key_missing_inside_a_row_is_an_error_too() -> None:
    context = drift_context(_monitor_report())
    del context["features"][0]["kind"]  # printed as text: a lax template would print ""
    with pytest.raises(jinja2.UndefinedError, match="has no attribute 'kind'"):
        render("drift", context)


def test_unknown_page_and_chart_kind_name_the_choices() -> None:
    with pytest.raises(ValueError) as page:
        render("dashboard", {})  # type: ignore[arg-type]
    assert str(page.value) == (
        "Page 'dashboard' does not exist. "
        "Use one of ['profile', 'evaluation', 'drift', 'clustering']."
    )
    with pytest.raises(ValueError) as kind:
        charts.draw({"kind": "pie", "chart_id": "p"})
    assert str(kind.value) == (
        "Chart kind 'pie' is unknown (chart 'p'). "
        "Use one of ['bar', 'heatmap', 'histogram', 'line', 'overlay', 'scatter']."
    )


# ---------------------------------------------------------------- evaluation pages per task


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("binary", CLASSIFIER_CHARTS + COMMON_CHARTS + ("fairness-cv-site",)),
        ("multiclass", CLASSIFIER_CHARTS + COMMON_CHARTS),
        ("regression", REGRESSION_CHARTS + COMMON_CHARTS),
    ],
)
def test_evaluation_page_renders_every_section_and_chart_per_task(
    fixture: str, expected: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    trained: Trained = request.getfixturevalue(fixture)
    html = _evaluation_page(trained)
    _assert_offline_and_well_formed(html)
    outline = _outline(html)
    assert outline.sections == list(SECTIONS)
    assert set(expected) <= set(outline.charts), set(expected) - set(outline.charts)
    assert "was saved with this version" not in html  # every piece of evidence is shown
    if fixture == "regression":
        assert "Residual mean" in html and "Threshold table" not in html
    else:
        assert "Threshold table" in html if fixture == "binary" else "Threshold table" not in html


def test_evaluation_page_with_data_adds_the_data_charts(regression: Trained) -> None:
    ev = load_evidence(regression.ref)
    data_eval, data_fair = evaluate_file(regression.ref, str(regression.csv))
    html = render_report(ev, data_eval, data_fair)
    charts_drawn = _outline(html).charts
    for chart in REGRESSION_CHARTS + ("slices-cv",):
        assert chart.replace("-cv", "-data") in charts_drawn
    assert "data file ev-diabetes.csv (442 rows)" in html


# ---------------------------------------------------------------- drift page, known answer


def test_drift_page_puts_the_planted_shift_first_and_marks_it() -> None:
    report = _monitor_report(shift=1.0)
    assert report.drifted == ["x"]
    html = render_html(report)
    panels = re.findall(r'<div class="panel" data-feature="([^"]*)"', html)
    assert panels[0] == "x"  # drifted first
    assert '<h3 class="bad">x — wasserstein/std ' in html
    assert html.count(">DRIFT</td>") == 1
    assert _outline(html).sections == ["features", "distributions"]
    charts_drawn = _outline(html).charts
    assert len(charts_drawn) == 6  # per feature: shares and effect size per hour (3 buckets)
    assert "wasserstein/std per hour" in html
    # the bucket chart plots the verdict's effect size with the rule's threshold drawn
    assert "drift threshold: wasserstein/std ≥ 0.05 (with p &lt; 0.01)" in html
    assert 'data-chart="distance-0"' in html


def test_chart_ticks_are_short_and_long_bar_labels_wrap_with_the_full_text() -> None:
    from keizoku.reporting.charts import Series, _fmt, bar_chart, line_chart

    assert [_fmt(v) for v in (15000, 250000, 999999, 2.5e6, 5000, 0.25)] == [
        "15k", "250k", "1M", "2.5M", "5000", "0.25",
    ]  # fmt: skip
    svg = line_chart("t", "t", [Series("a", [0, 1], [10000, 30000])], "x", "price")
    assert "e+0" not in svg and ">20k<" in svg
    label = "payment_method = Electronic check"
    bars = bar_chart("b", "b", [label, "short"], [0.2, 0.1], "error rate")
    assert f"<title>{label}</title>" in bars  # the whole label on hover
    assert ">payment_method =</tspan>" in bars and ">Electronic check</tspan>" in bars
    assert "Electroni…" not in bars


# ---------------------------------------------------------------- layering


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module imported, enclosing top-level function or None) for each import in ``path``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, str | None]] = []
    for top in tree.body:
        owner = top.name if isinstance(top, ast.FunctionDef) else None
        for node in ast.walk(top):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, owner))
            elif isinstance(node, ast.Import):
                found.extend((alias.name, owner) for alias in node.names)
    return found


def test_reporting_knows_no_cli_server_lifecycle_or_domain() -> None:
    for path in (SRC / "reporting").rglob("*.py"):
        for module, _ in _imports(path):
            if module.startswith("keizoku"):
                assert module in ("keizoku", "keizoku.home", "keizoku.reporting.charts"), (
                    f"{path.name} imports {module}"
                )


def test_only_the_thin_page_functions_import_reporting() -> None:
    allowed = {
        "data/profile.py": {"write_profile_html"},
        "evaluation/report.py": {"render_report", "write_report", "write_overlay"},
        "monitoring/report.py": {"render_html", "write_html"},
        "clustering/report.py": {"write_cluster_report"},
        "console/pages.py": {"_env"},  # the console renders its pages on the same base
    }
    seen: dict[str, set[str | None]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("reporting/"):
            continue
        for module, owner in _imports(path):
            if module.startswith("keizoku.reporting"):
                seen.setdefault(rel, set()).add(owner)
    assert seen == allowed
    assert not (SRC / "data" / "_profile_html.py").exists()
