"""Inline SVG charts for the report: no JavaScript, no network, readable offline.

Every chart is ``<svg class="chart" data-chart="ID" role="img">`` with a ``<title>``,
a visible title, labelled axes (with units) and tick values. Helpers:
``line_chart`` (curves), ``scatter_chart``, ``bar_chart`` (horizontal bars),
``heatmap`` (confusion matrix) and ``histogram``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

__all__ = ["Series", "line_chart", "scatter_chart", "bar_chart", "heatmap", "histogram"]

WIDTH, HEIGHT = 480, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 52
COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6")


@dataclass
class Series:
    """One line (or set of points) of a chart."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    dashed: bool = False


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _range(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return lo - 1, hi + 1
    span = hi - lo
    return lo - pad * span, hi + pad * span


class _Frame:
    """Maps data coordinates to the plot area and draws axes."""

    def __init__(self, xr: tuple[float, float], yr: tuple[float, float], left: int = LEFT):
        self.x0, self.x1 = xr
        self.y0, self.y1 = yr
        self.left = left
        self.w = WIDTH - left - RIGHT
        self.h = HEIGHT - TOP - BOTTOM

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        return TOP + self.h - (v - self.y0) / (self.y1 - self.y0) * self.h

    def axes(self, xlabel: str, ylabel: str, xticks: bool = True) -> list[str]:
        bottom = TOP + self.h
        parts = [
            f'<line class="axis" x1="{self.left}" y1="{bottom}" x2="{self.left + self.w}" '
            f'y2="{bottom}"/>',
            f'<line class="axis" x1="{self.left}" y1="{TOP}" x2="{self.left}" y2="{bottom}"/>',
        ]
        if xticks:
            for t in _ticks(self.x0, self.x1):
                px = self.x(t)
                parts.append(
                    f'<line class="tick" x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" '
                    f'y2="{bottom + 4}"/><text x="{px:.1f}" y="{bottom + 16}" '
                    f'text-anchor="middle">{_fmt(t)}</text>'
                )
        for t in _ticks(self.y0, self.y1):
            py = self.y(t)
            parts.append(
                f'<line class="grid" x1="{self.left}" y1="{py:.1f}" x2="{self.left + self.w}" '
                f'y2="{py:.1f}"/><text x="{self.left - 6}" y="{py + 4:.1f}" '
                f'text-anchor="end">{_fmt(t)}</text>'
            )
        parts.append(
            f'<text class="axis-label" x="{self.left + self.w / 2:.1f}" y="{HEIGHT - 10}" '
            f'text-anchor="middle">{escape(xlabel)}</text>'
        )
        parts.append(
            f'<text class="axis-label" transform="translate(14,{TOP + self.h / 2:.1f}) '
            f'rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
        )
        return parts


def _svg(chart_id: str, title: str, body: list[str], legend: list[str] | None = None) -> str:
    items = ""
    if legend:
        items = "".join(
            f'<rect x="{WIDTH - RIGHT - 150}" y="{TOP + 4 + 14 * i}" width="10" height="10" '
            f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{WIDTH - RIGHT - 136}" '
            f'y="{TOP + 13 + 14 * i}">{escape(name[:22])}</text>'
            for i, name in enumerate(legend[:8])
        )
    return (
        f'<svg class="chart" data-chart="{escape(chart_id)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>'
        f'<text class="chart-title" x="{WIDTH / 2}" y="22" text-anchor="middle">'
        f"{escape(title)}</text>{''.join(body)}{items}</svg>"
    )


def line_chart(
    chart_id: str,
    title: str,
    series: list[Series],
    xlabel: str,
    ylabel: str,
    *,
    xr: tuple[float, float] | None = None,
    yr: tuple[float, float] | None = None,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    """Lines (e.g. ROC, precision-recall, calibration, learning curve)."""
    xs = [float(v) for s in series for v in s.xs]
    ys = [float(v) for s in series for v in s.ys if v is not None]
    frame = _Frame(xr or _range(xs), yr or _range(ys))
    body = frame.axes(xlabel, ylabel)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        body.append(
            f'<line class="reference" x1="{frame.x(lo):.1f}" y1="{frame.y(lo):.1f}" '
            f'x2="{frame.x(hi):.1f}" y2="{frame.y(hi):.1f}"/>'
        )
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(frame.x(x), frame.y(y)) for x, y in zip(s.xs, s.ys, strict=True) if y is not None]
        if not pts:
            continue
        dash = ' stroke-dasharray="5,4"' if s.dashed else ""
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        body.append(f'<polyline class="line" points="{path}" stroke="{colour}"{dash}/>')
        if markers:
            body.extend(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in pts
            )
    legend = [s.name for s in series] if len(series) > 1 else None
    return _svg(chart_id, title, body, legend)


def scatter_chart(
    chart_id: str,
    title: str,
    xs: Sequence[float],
    ys: Sequence[float],
    xlabel: str,
    ylabel: str,
    *,
    diagonal: bool = False,
    zero_line: bool = False,
) -> str:
    """Points (e.g. predicted vs actual, residuals vs predicted)."""
    frame = _Frame(_range(list(xs)), _range(list(ys)))
    body = frame.axes(xlabel, ylabel)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        body.append(
            f'<line class="reference" x1="{frame.x(lo):.1f}" y1="{frame.y(lo):.1f}" '
            f'x2="{frame.x(hi):.1f}" y2="{frame.y(hi):.1f}"/>'
        )
    if zero_line and frame.y0 < 0 < frame.y1:
        body.append(
            f'<line class="reference" x1="{frame.left}" y1="{frame.y(0):.1f}" '
            f'x2="{frame.left + frame.w}" y2="{frame.y(0):.1f}"/>'
        )
    body.extend(
        f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.2"/>'
        for x, y in zip(xs, ys, strict=True)
    )
    return _svg(chart_id, title, body)


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    xlabel: str,
    *,
    reference: float | None = None,
) -> str:
    """Horizontal bars, one per label (e.g. importance, error by segment)."""
    left = 170
    hi = max([*values, reference or 0.0, 0.0]) or 1.0
    frame = _Frame((0.0, hi * 1.05), (0.0, 1.0), left=left)
    body = [b for b in frame.axes(xlabel, "") if "rotate(-90)" not in b and 'class="grid"' not in b]
    n = max(len(labels), 1)
    band = frame.h / n
    height = min(band * 0.75, 26)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * band + (band - height) / 2
        width = max(frame.x(v) - left, 0.5)
        body.append(
            f'<rect class="bar" x="{left}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}: {_fmt(v)}</title></rect>"
            f'<text x="{left - 6}" y="{y + height / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(label[:26])}</text>"
        )
    if reference is not None:
        px = frame.x(reference)
        body.append(
            f'<line class="reference" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" '
            f'y2="{TOP + frame.h}"><title>overall: {_fmt(reference)}</title></line>'
        )
    return _svg(chart_id, title, body)


def heatmap(
    chart_id: str,
    title: str,
    matrix: list[list[int]],
    labels: list[str],
    xlabel: str,
    ylabel: str,
) -> str:
    """A count matrix with the count in each cell (the confusion matrix)."""
    k = max(len(labels), 1)
    size = min((WIDTH - LEFT - RIGHT - 60) / k, (HEIGHT - TOP - BOTTOM) / k)
    left = LEFT + 40
    top_max = max((max(r) for r in matrix if r), default=1) or 1
    body = []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            shade = 0.1 + 0.9 * count / top_max
            x, y = left + j * size, TOP + i * size
            text_fill = "#fff" if shade > 0.55 else "#222"
            body.append(
                f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{size:.1f}" '
                f'height="{size:.1f}" fill="#4c78a8" fill-opacity="{shade:.2f}"/>'
                f'<text x="{x + size / 2:.1f}" y="{y + size / 2 + 4:.1f}" text-anchor="middle" '
                f'fill="{text_fill}">{count}</text>'
            )
    for i, label in enumerate(labels):
        body.append(
            f'<text x="{left - 6}" y="{TOP + i * size + size / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(label[:12])}</text>'
            f'<text x="{left + i * size + size / 2:.1f}" y="{TOP + k * size + 14:.1f}" '
            f'text-anchor="middle">{escape(label[:12])}</text>'
        )
    body.append(
        f'<text class="axis-label" x="{left + k * size / 2:.1f}" y="{TOP + k * size + 32:.1f}" '
        f'text-anchor="middle">{escape(xlabel)}</text>'
        f'<text class="axis-label" transform="translate(14,{TOP + k * size / 2:.1f}) '
        f'rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
    )
    return _svg(chart_id, title, body)


def histogram(
    chart_id: str, title: str, values: Sequence[float], xlabel: str, ylabel: str = "rows"
) -> str:
    """Counts of ``values`` in up to 30 equal-width bins."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        arr = np.zeros(1)
    counts, edges = np.histogram(arr, bins=min(30, max(5, int(math.sqrt(arr.size)))))
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, float(counts.max()) * 1.05 or 1.0))
    body = frame.axes(xlabel, ylabel)
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        x0, x1 = frame.x(lo), frame.x(hi)
        body.append(
            f'<rect class="bar" x="{x0:.1f}" y="{frame.y(c):.1f}" '
            f'width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{frame.y(0) - frame.y(c):.1f}"/>'
        )
    return _svg(chart_id, title, body)
