"""Inline SVG charts for every keizoku page: no JavaScript, no network, readable offline.

Every chart is ``<svg class="chart" data-chart="ID" role="img">`` (a profile column chart
also carries ``data-column="NAME"``) with a ``<title>``, a visible title, labelled axes
(with units) and tick values. Each helper escapes every label it writes, so its string
may be marked safe (:func:`draw` does that for the templates). Helpers:

- ``line_chart``: curves (ROC, precision-recall, calibration, learning curve, PSI over time);
- ``scatter_chart``: points (predicted vs actual, residuals);
- ``bar_chart``: horizontal bars, optionally two per label (importance, slices, top values,
  reference vs current shares);
- ``heatmap``: a count matrix (confusion matrix);
- ``histogram``: counts of values in equal-width bins;
- ``overlay``: an image with a heat map on top (an image model's attribution), drawn as
  one embedded PNG (``overlay_png``; a ``data:`` URI, nothing fetched).

Pages describe their charts as plain dicts, ``{"kind": "line", ...keyword arguments}``,
so the packages that build them need not import this module; :func:`draw` turns one
into SVG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from markupsafe import Markup, escape

__all__ = [
    "Series",
    "bar_chart",
    "draw",
    "heatmap",
    "histogram",
    "line_chart",
    "overlay",
    "overlay_png",
    "scatter_chart",
]

WIDTH, HEIGHT = 480, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 52
BAR_LEFT = 170  # room for the labels of a bar chart
BAR_ROW = 18  # pixels per label once a bar chart has more labels than fit in HEIGHT
MAX_BINS = 30
COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6")


@dataclass
class Series:
    """One line (or set of points) of a chart; ``tips`` label each point on hover."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    dashed: bool = False
    tips: Sequence[str] | None = None


def _e(text: object) -> str:
    return str(escape(str(text)))


def _fmt(v: float) -> str:
    """A tick value in at most ~5 characters: 15k, 2.5M, 5000, 0.25, 1e-05."""
    if v == 0:
        return "0"
    r = float(f"{v:.3g}")  # rounded first, so 999,999 reads 1M, not 1e+03k
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(r) >= size:
            size = 1e3 if suffix == "k" else size
            return f"{r / size:.3g}{suffix}"
    if abs(v) >= 1e3:
        return f"{v:.4g}"
    if abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _wrap(label: str, width: int = 26) -> list[str]:
    """``label`` on at most two lines of ``width`` characters, broken at a space when one
    is near; what is still too long ends with "…" (the full label is the text's title)."""
    if len(label) <= width:
        return [label]
    cut = label.rfind(" ", width // 2, width + 1)
    cut = cut if cut > 0 else width
    rest = label[cut:].strip()
    return [label[:cut].rstrip(), rest if len(rest) <= width else rest[: width - 1] + "…"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _range(values: Sequence[float | None], pad: float = 0.05) -> tuple[float, float]:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return lo - 1, hi + 1
    span = hi - lo
    return lo - pad * span, hi + pad * span


class _Frame:
    """Maps data coordinates to the plot area and draws axes."""

    def __init__(
        self,
        xr: tuple[float, float],
        yr: tuple[float, float],
        left: int = LEFT,
        height: int = HEIGHT,
    ):
        self.x0, self.x1 = xr
        self.y0, self.y1 = yr
        self.left = left
        self.height = height
        self.w = WIDTH - left - RIGHT
        self.h = height - TOP - BOTTOM

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        return TOP + self.h - (v - self.y0) / (self.y1 - self.y0) * self.h

    def axes(
        self,
        xlabel: str,
        ylabel: str,
        *,
        xticks: Sequence[tuple[float, str]] | None = None,
        grid: bool = True,
    ) -> list[str]:
        bottom = TOP + self.h
        parts = [
            f'<line class="axis" x1="{self.left}" y1="{bottom}" x2="{self.left + self.w}" '
            f'y2="{bottom}"/>',
            f'<line class="axis" x1="{self.left}" y1="{TOP}" x2="{self.left}" y2="{bottom}"/>',
        ]
        ticks = xticks if xticks is not None else [(t, _fmt(t)) for t in _ticks(self.x0, self.x1)]
        for t, label in ticks:
            px = self.x(t)
            parts.append(
                f'<line class="tick" x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" '
                f'y2="{bottom + 4}"/><text x="{px:.1f}" y="{bottom + 16}" '
                f'text-anchor="middle">{_e(label)}</text>'
            )
        if grid:
            for t in _ticks(self.y0, self.y1):
                py = self.y(t)
                parts.append(
                    f'<line class="grid" x1="{self.left}" y1="{py:.1f}" '
                    f'x2="{self.left + self.w}" y2="{py:.1f}"/><text x="{self.left - 6}" '
                    f'y="{py + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
                )
        parts.append(
            f'<text class="axis-label" x="{self.left + self.w / 2:.1f}" y="{self.height - 10}" '
            f'text-anchor="middle">{_e(xlabel)}</text>'
        )
        if ylabel:
            parts.append(
                f'<text class="axis-label" transform="translate(14,{TOP + self.h / 2:.1f}) '
                f'rotate(-90)" text-anchor="middle">{_e(ylabel)}</text>'
            )
        return parts

    def reference_line(self, x0: float, y0: float, x1: float, y1: float, tip: str = "") -> str:
        title = f"<title>{_e(tip)}</title>" if tip else ""
        return (
            f'<line class="reference" x1="{self.x(x0):.1f}" y1="{self.y(y0):.1f}" '
            f'x2="{self.x(x1):.1f}" y2="{self.y(y1):.1f}">{title}</line>'
        )


def _legend(names: Sequence[str], *, inline: bool) -> str:
    """Colour keys: a column at the top right, or (``inline``) a row above the plot."""
    items = []
    x = float(LEFT)
    for i, name in enumerate(names[:8]):
        colour = COLOURS[i % len(COLOURS)]
        label = _e(name if len(name) <= 22 else name[:21] + "…") + f"<title>{_e(name)}</title>"
        if inline:
            items.append(
                f'<rect x="{x:.0f}" y="{TOP - 13}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14:.0f}" y="{TOP - 4}">{label}</text>'
            )
            x += 28 + 6.5 * min(len(name), 22)
        else:
            items.append(
                f'<rect x="{WIDTH - RIGHT - 150}" y="{TOP + 4 + 14 * i}" width="10" height="10" '
                f'fill="{colour}"/><text x="{WIDTH - RIGHT - 136}" '
                f'y="{TOP + 13 + 14 * i}">{label}</text>'
            )
    return "".join(items)


def _svg(
    chart_id: str,
    title: str,
    body: list[str],
    *,
    legend: str = "",
    column: str | None = None,
    height: int = HEIGHT,
) -> str:
    key = f'data-column="{_e(column)}" ' if column is not None else ""
    return (
        f'<svg class="chart" {key}data-chart="{_e(chart_id)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><title>{_e(title)}</title>'
        f'<text class="chart-title" x="{WIDTH / 2}" y="22" text-anchor="middle">'
        f"{_e(title)}</text>{''.join(body)}{legend}</svg>"
    )


def _tip(tips: Sequence[str] | None, i: int) -> str:
    return f"<title>{_e(tips[i])}</title>" if tips and i < len(tips) else ""


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    xlabel: str,
    ylabel: str,
    *,
    xr: tuple[float, float] | None = None,
    yr: tuple[float, float] | None = None,
    diagonal: bool = False,
    markers: bool = False,
    hline: float | None = None,
    hline_label: str = "",
    xticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Lines (ROC, precision-recall, calibration, learning curve, PSI over time).

    ``hline`` draws a dashed horizontal reference (a threshold); ``xticks`` replaces the
    numeric x ticks with (value, label) pairs (e.g. dates).
    """
    xs = [float(v) for s in series for v in s.xs]
    ys = [float(v) for s in series for v in s.ys if v is not None]
    if hline is not None:
        ys.append(hline)
    frame = _Frame(xr or _range(xs), yr or _range(ys))
    body = frame.axes(xlabel, ylabel, xticks=xticks)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        body.append(frame.reference_line(lo, lo, hi, hi))
    if hline is not None:
        body.append(frame.reference_line(frame.x0, hline, frame.x1, hline, hline_label))
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [
            (j, frame.x(x), frame.y(y))
            for j, (x, y) in enumerate(zip(s.xs, s.ys, strict=True))
            if y is not None
        ]
        if not pts:
            continue
        dash = ' stroke-dasharray="5,4"' if s.dashed else ""
        path = " ".join(f"{px:.1f},{py:.1f}" for _, px, py in pts)
        body.append(f'<polyline class="line" points="{path}" stroke="{colour}"{dash}/>')
        if markers:
            body.extend(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"{_tip(s.tips, j)}</circle>"
                for j, px, py in pts
            )
    legend = _legend([s.name for s in series], inline=False) if len(series) > 1 else ""
    return _svg(chart_id, title, body, legend=legend)


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
    """Points (predicted vs actual, residuals vs predicted)."""
    frame = _Frame(_range(list(xs)), _range(list(ys)))
    body = frame.axes(xlabel, ylabel)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        body.append(frame.reference_line(lo, lo, hi, hi))
    if zero_line and frame.y0 < 0 < frame.y1:
        body.append(frame.reference_line(frame.x0, 0, frame.x1, 0))
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
    ylabel: str = "",
    reference: float | None = None,
    compare: Sequence[float] | None = None,
    legend: Sequence[str] | None = None,
    tips: Sequence[str] | None = None,
    column: str | None = None,
) -> str:
    """Horizontal bars, one per label (importance, error by segment, top values).

    ``compare`` draws a second bar per label (e.g. current next to reference shares),
    named by ``legend``; ``reference`` draws a dashed vertical line (e.g. the overall
    error); ``tips`` label each bar on hover.
    """
    n = max(len(labels), 1)
    height = max(HEIGHT, TOP + BOTTOM + BAR_ROW * n)
    hi = max([*values, *(compare or []), reference or 0.0, 0.0]) or 1.0
    frame = _Frame((0.0, hi * 1.05), (0.0, 1.0), left=BAR_LEFT, height=height)
    body = frame.axes(xlabel, ylabel, grid=False)
    band = frame.h / n
    groups = [values] if compare is None else [values, compare]
    bar = min(band * 0.75, 26) / len(groups)
    for i, label in enumerate(labels):
        y = TOP + i * band + (band - bar * len(groups)) / 2
        for g, vals in enumerate(groups):
            v = float(vals[i]) if i < len(vals) else 0.0
            width = max(frame.x(v) - BAR_LEFT, 0.5)
            cls = "bar" if g == 0 else "bar compare"
            tip = tips[i] if tips and g == 0 and i < len(tips) else f"{label}: {_fmt(v)}"
            body.append(
                f'<rect class="{cls}" fill="{COLOURS[g]}" x="{BAR_LEFT}" y="{y + g * bar:.1f}" '
                f'width="{width:.1f}" height="{max(bar - 1, 1):.1f}"><title>{_e(tip)}</title>'
                "</rect>"
            )
        lines = _wrap(label)
        mid = y + bar * len(groups) / 2 + 4 - 6 * (len(lines) - 1)
        spans = "".join(
            f'<tspan x="{BAR_LEFT - 6}" dy="{0 if k == 0 else 12}">{_e(line)}</tspan>'
            for k, line in enumerate(lines)
        )
        body.append(
            f'<text x="{BAR_LEFT - 6}" y="{mid:.1f}" text-anchor="end">'
            f"<title>{_e(label)}</title>{spans}</text>"
        )
    if reference is not None:
        body.append(frame.reference_line(reference, 0, reference, 1, f"overall: {reference:.3g}"))
    keys = _legend(legend, inline=True) if legend else ""
    return _svg(chart_id, title, body, legend=keys, column=column, height=height)


def heatmap(
    chart_id: str,
    title: str,
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
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
                f'fill="{text_fill}">{int(count)}</text>'
            )
    for i, label in enumerate(labels):
        body.append(
            f'<text x="{left - 6}" y="{TOP + i * size + size / 2 + 4:.1f}" '
            f'text-anchor="end">{_e(str(label)[:12])}</text>'
            f'<text x="{left + i * size + size / 2:.1f}" y="{TOP + k * size + 14:.1f}" '
            f'text-anchor="middle">{_e(str(label)[:12])}</text>'
        )
    body.append(
        f'<text class="axis-label" x="{left + k * size / 2:.1f}" y="{TOP + k * size + 32:.1f}" '
        f'text-anchor="middle">{_e(xlabel)}</text>'
        f'<text class="axis-label" transform="translate(14,{TOP + k * size / 2:.1f}) '
        f'rotate(-90)" text-anchor="middle">{_e(ylabel)}</text>'
    )
    return _svg(chart_id, title, body)


def histogram(
    chart_id: str,
    title: str,
    values: Sequence[float] | np.ndarray,
    xlabel: str,
    ylabel: str = "rows",
    *,
    bins: int | None = None,
    column: str | None = None,
) -> str:
    """Counts of the finite ``values`` in ``bins`` equal-width bins (default: √n, 5 to 30)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        arr = np.zeros(1)
    n_bins = bins or min(MAX_BINS, max(5, int(math.sqrt(arr.size))))
    counts, edges = np.histogram(arr, bins=max(1, min(MAX_BINS, n_bins)))
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, float(counts.max()) * 1.05 or 1.0))
    if frame.x1 <= frame.x0:  # one distinct value: numpy gives a unit-wide bin around it
        frame.x0, frame.x1 = frame.x0 - 0.5, frame.x1 + 0.5
    body = frame.axes(xlabel, ylabel)
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        x0, x1 = frame.x(lo), frame.x(hi)
        body.append(
            f'<rect class="bar" fill="{COLOURS[0]}" x="{x0:.1f}" y="{frame.y(c):.1f}" '
            f'width="{max(x1 - x0 - 1, 0.5):.1f}" height="{frame.y(0) - frame.y(c):.1f}">'
            f"<title>{lo:.4g} to {hi:.4g}: {int(c):,} {_e(ylabel)}</title></rect>"
        )
    return _svg(chart_id, title, body, column=column)


OVERLAY_PX = 144  # an overlay's longer side on the page
POSITIVE, NEGATIVE = np.array([0.89, 0.1, 0.11]), np.array([0.13, 0.4, 0.85])


def overlay_png(
    image: Any, attribution: Any, *, signed: bool = True, px: int = OVERLAY_PX
) -> bytes:
    """A PNG of ``image`` (height × width grayscale, or × 3 RGB, in [0, 1]) dimmed, with
    ``attribution`` on top: red where it pushes toward the class, blue where it pushes away
    (``signed``), or red for magnitude only; opacity grows with |value| (its largest is 75 %).
    Scaled up by whole pixels so small images stay sharp."""
    import io

    from PIL import Image

    base = np.clip(np.asarray(image, dtype=float), 0, 1)
    rgb = np.repeat(base[..., None], 3, axis=2) if base.ndim == 2 else base[..., :3]
    heat = np.asarray(attribution, dtype=float)
    top = float(np.abs(heat).max()) if heat.size else 0.0
    alpha = (np.abs(heat) / top if top > 0 else np.zeros_like(heat))[..., None] * 0.75
    toward = heat >= 0 if signed else np.ones(heat.shape, dtype=bool)
    colour = np.where(toward[..., None], POSITIVE, NEGATIVE)
    out = (0.25 + 0.5 * rgb) * (1 - alpha) + colour * alpha
    k = max(1, px // max(out.shape[:2]))
    big = np.kron(np.round(out * 255).astype(np.uint8), np.ones((k, k, 1), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(big, mode="RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def overlay(
    chart_id: str,
    title: str,
    image: Sequence[Any],
    attribution: Sequence[Any],
    *,
    signed: bool = True,
    caption: str = "",
) -> str:
    """An attribution heat map over its image (``overlay_png``), titled, with a caption."""
    import base64

    png = base64.b64encode(overlay_png(image, attribution, signed=signed)).decode("ascii")
    h, w = np.asarray(attribution).shape[:2]
    k = max(1, OVERLAY_PX // max(h, w))
    width, height = max(w * k + 16, 170), h * k + 62
    x = (width - w * k) / 2
    return (
        f'<svg class="chart overlay" data-chart="{_e(chart_id)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}. {_e(caption)}</title>'
        f'<text class="chart-title" x="{width / 2}" y="16" text-anchor="middle">'
        f'{_e(title)}</text><image x="{x:.0f}" y="24" width="{w * k}" height="{h * k}" '
        f'style="image-rendering:pixelated" href="data:image/png;base64,{png}"/>'
        f'<text x="{width / 2}" y="{h * k + 42}" text-anchor="middle">{_e(caption)}</text>'
        "</svg>"
    )


def _line_from_spec(**args: Any) -> str:
    args["series"] = [s if isinstance(s, Series) else Series(**s) for s in args["series"]]
    return line_chart(**args)


_HELPERS: dict[str, Callable[..., str]] = {
    "line": _line_from_spec,
    "scatter": scatter_chart,
    "bar": bar_chart,
    "heatmap": heatmap,
    "histogram": histogram,
    "overlay": overlay,
}


def draw(spec: Mapping[str, Any]) -> Markup:
    """The SVG of one chart described as ``{"kind": KIND, **keyword arguments}``.

    The helpers escape every label they write, so the result is marked safe.
    """
    kind = spec.get("kind")
    helper = _HELPERS.get(str(kind))
    if helper is None:
        raise ValueError(
            f"Chart kind {kind!r} is unknown (chart {spec.get('chart_id')!r}). "
            f"Use one of {sorted(_HELPERS)}."
        )
    return Markup(helper(**{k: v for k, v in spec.items() if k != "kind"}))
