"""Render a :class:`~keizoku.data.profile.Profile` as one self-contained HTML page.

No JavaScript and no network: CSS is inline and every chart is an SVG drawn here,
a histogram per numeric column and a bar chart of the top values per categorical
or boolean column. Each column chart is ``<svg class="chart" data-column="NAME">``.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keizoku.data.schema import Schema

if TYPE_CHECKING:
    from keizoku.data.profile import ColumnProfile, Profile

__all__ = ["render_html", "plotted_columns"]

WIDTH, HEIGHT = 520, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 48
BAR_LEFT = 140  # room for category labels in bar charts
MAX_BINS = 30
MAX_BARS = 10
BAR_KINDS = ("categorical", "boolean")
BAR_COLOUR = "#4c78a8"
MAX_BAR_HEIGHT = 28.0

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{margin-bottom:.2rem}section{margin:1.5rem 0}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4}td.num{text-align:right}
tr.leak td{background:#fde8e8}
.flag{display:inline-block;background:#eee;border-radius:3px;padding:0 .3rem;margin:0 .1rem;
font-size:.8rem}
.flag.leak-suspect{background:#f8b4b4}
ul.warnings li{margin:.3rem 0}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
svg.chart{border:1px solid #eee;background:#fff}
svg.chart text{font-size:11px;fill:#333}
svg.chart text.chart-title{font-size:13px;font-weight:600}
svg.chart rect.bar{fill:#4c78a8}
svg.chart line.axis{stroke:#333}
"""


def render_html(profile: Profile, frame: pd.DataFrame, schema: Schema) -> str:
    """The whole report as one HTML string."""
    title = "keizoku data profile"
    if profile.target:
        title += f" (target '{profile.target}')"
    body = "\n".join(
        [
            f"<h1>{escape(title)}</h1>",
            _summary_section(profile),
            _warnings_section(profile),
            _balance_section(profile),
            _leak_section(profile),
            _columns_section(profile),
            _charts_section(profile, frame),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
        "</body></html>\n"
    )


def plotted_columns(profile: Profile) -> list[ColumnProfile]:
    """The columns that get a chart: numeric (histogram) and categorical/boolean (bars)."""
    return [c for c in profile.columns if c.distinct > 0 and (c.stats or c.kind in BAR_KINDS)]


# ---------------------------------------------------------------- sections


def _section(key: str, heading: str, inner: str) -> str:
    return f'<section id="{key}">\n<h2>{escape(heading)}</h2>\n{inner}\n</section>'


def _table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        lines.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _td(text: object, numeric: bool = False) -> str:
    cls = ' class="num"' if numeric else ""
    return f"<td{cls}>{escape(str(text))}</td>"


def _summary_section(profile: Profile) -> str:
    from keizoku.data.profile import _summary_rows

    rows = [[f"<th>{escape(k)}</th>", _td(v)] for k, v in _summary_rows(profile)]
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return _section("summary", "Summary", f"<table><tbody>{body}</tbody></table>")


def _warnings_section(profile: Profile) -> str:
    if not profile.warnings:
        return _section("warnings", "Warnings", "<p>No findings.</p>")
    items = "".join(f"<li>{escape(w)}</li>" for w in profile.warnings)
    return _section(
        "warnings", f"Warnings ({len(profile.warnings)})", f'<ul class="warnings">{items}</ul>'
    )


def _balance_section(profile: Profile) -> str:
    balance = profile.balance
    if balance is None:
        return _section("target-balance", "Target balance", "<p>No target was given.</p>")
    heading = f"Target balance: '{balance.target}' ({balance.task})"
    note = f"<p>{balance.labelled:,} labelled rows, {balance.missing:,} missing.</p>"
    if balance.summary is not None:
        rows = [[_td(k), _td(f"{v:.4g}", True)] for k, v in balance.summary.items()]
        return _section("target-balance", heading, note + _table(["statistic", "value"], rows))
    rows = [
        [_td(c.label), _td(f"{c.count:,}", True), _td(f"{c.share:.1%}", True)]
        for c in balance.classes
    ]
    return _section("target-balance", heading, note + _table(["class", "rows", "share"], rows))


def _leak_section(profile: Profile) -> str:
    if profile.balance is None:
        return _section("leakage", "Leakage suspects", "<p>No target: not checked.</p>")
    if not profile.leaks:
        text = (
            f"<p>No feature predicts the target almost perfectly on its own "
            f"(checked on {profile.leak_rows:,} rows).</p>"
        )
        return _section("leakage", "Leakage suspects", text)
    rows = [[_td(s.column), _td(s.metric), _td(f"{s.score:.3f}", True)] for s in profile.leaks]
    return _section("leakage", "Leakage suspects", _table(["column", "metric", "score"], rows))


def _columns_section(profile: Profile) -> str:
    headers = ["column", "kind", "role", "missing", "distinct", "summary", "flags"]
    rows, classes = [], []
    for col in profile.columns:
        flags = "".join(f'<span class="flag {escape(f)}">{escape(f)}</span>' for f in col.flags)
        rows.append(
            [
                _td(col.name),
                _td(col.kind),
                _td(col.role),
                _td(f"{col.missing_share:.1%}", True),
                _td(f"{col.distinct:,}", True),
                _td(col.summary),
                f"<td>{flags}</td>",
            ]
        )
        classes.append("leak" if "leak-suspect" in col.flags else "")
    return _section("columns", "Columns", _table(headers, rows, classes))


def _charts_section(profile: Profile, frame: pd.DataFrame) -> str:
    charts = []
    for col in plotted_columns(profile):
        series = frame[col.name]
        charts.append(_histogram(col, series) if col.stats else _bar_chart(col, series))
    inner = f'<div class="charts">{"".join(charts)}</div>' if charts else "<p>No charts.</p>"
    return _section("distributions", "Distributions", inner)


# ---------------------------------------------------------------- SVG


def _svg_open(col: ColumnProfile, title: str) -> str:
    name = escape(col.name)
    return (
        f'<svg class="chart" data-column="{name}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'font-family="sans-serif" font-size="11" fill="#333">'
        f"<title>{escape(title)}</title>"
        f'<text class="chart-title" x="{WIDTH / 2}" y="20" text-anchor="middle" '
        'font-size="13" font-weight="600">'
        f"{escape(title)}</text>"
    )


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(label)}</text>'


def _rect(x: float, y: float, width: float, height: float, tip: str) -> str:
    return (
        f'<rect class="bar" fill="{BAR_COLOUR}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
        f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
    )


def _axes(left: float, x_label: str, y_label: str) -> str:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    y_mid = (TOP + bottom) / 2
    return (
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>'
        f'<line class="axis" x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#333"/>'
        + _text((left + right) / 2, HEIGHT - 8, x_label, extra=' class="x-label"')
        + _text(14, y_mid, y_label, extra=f' class="y-label" transform="rotate(-90 14 {y_mid})"')
    )


def _histogram(col: ColumnProfile, series: pd.Series) -> str:
    values = series.dropna().to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    bins = max(1, min(MAX_BINS, col.distinct))
    counts, edges = np.histogram(values, bins=bins)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max(int(counts.max()), 1)
    bar_w = plot_w / len(counts)
    parts = [_svg_open(col, f"{col.name}: histogram ({len(values):,} values)")]
    for i, n in enumerate(counts):
        h = plot_h * n / top
        x, y = LEFT + i * bar_w, HEIGHT - BOTTOM - h
        tip = f"{edges[i]:.4g} to {edges[i + 1]:.4g}: {n:,} rows"
        parts.append(_rect(x, y, max(bar_w - 1, 1), h, tip))
    for frac in (0.0, 0.5, 1.0):
        x = LEFT + frac * plot_w
        value = edges[0] + frac * (edges[-1] - edges[0])
        parts.append(_text(x, HEIGHT - BOTTOM + 14, f"{value:.4g}"))
        y = HEIGHT - BOTTOM - frac * plot_h
        parts.append(_text(LEFT - 4, y + 4, f"{top * frac:,.0f}", anchor="end"))
    parts.append(_axes(LEFT, col.name, "rows"))
    return "".join(parts) + "</svg>"


def _bar_chart(col: ColumnProfile, series: pd.Series) -> str:
    counts = series.dropna().astype(str).value_counts()
    shown = counts.head(MAX_BARS)
    title = f"{col.name}: top {len(shown)} of {len(counts)} values"
    plot_w, plot_h = WIDTH - BAR_LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max(int(shown.max()), 1)
    bar_h = min(plot_h / len(shown), MAX_BAR_HEIGHT)
    parts = [_svg_open(col, title)]
    for i, (label, n) in enumerate(shown.items()):
        w = plot_w * int(n) / top
        y = TOP + i * bar_h
        tip = f"{label}: {int(n):,} rows ({int(n) / len(series):.1%})"
        parts.append(_rect(BAR_LEFT, y + 1, w, max(bar_h - 2, 1), tip))
        short = label if len(label) <= 18 else label[:17] + "…"
        parts.append(_text(BAR_LEFT - 4, y + bar_h / 2 + 4, short, anchor="end"))
    for frac in (0.0, 0.5, 1.0):
        parts.append(_text(BAR_LEFT + frac * plot_w, HEIGHT - BOTTOM + 14, f"{top * frac:,.0f}"))
    parts.append(_axes(BAR_LEFT, "rows", col.name))
    return "".join(parts) + "</svg>"
