"""Self-contained HTML drift report: inline SVG drawn in Python, no scripts, no CDN."""

from __future__ import annotations

import html
import time
from pathlib import Path

from keizoku.home import atomic_write_text
from keizoku.monitoring.drift import FeatureDrift
from keizoku.monitoring.monitor import MonitorReport

__all__ = ["render_html", "write_html", "bars_svg", "line_svg"]

REF_COLOR, CUR_COLOR, BAD = "#7a8ca3", "#e07a1f", "#c0392b"

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 24px}
td,th{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.bad{color:#c0392b;font-weight:600}.ok{color:#2e7d32}.card{display:inline-block;vertical-align:top;
margin:0 16px 16px 0;padding:8px;border:1px solid #e5e5e5;border-radius:6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""


def _esc(text: object) -> str:
    return html.escape(str(text))


def bars_svg(labels: list[str], ref: list[float], cur: list[float], width: int = 480) -> str:
    """Grouped bars: reference (grey) vs current (orange) share per bin/level."""
    h, pad = 170, 24
    n = max(len(labels), 1)
    top = max(max(ref, default=0), max(cur, default=0), 1e-9)
    slot = (width - 2 * pad) / n
    bw = max(slot / 2 - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h + 40}">']
    parts.append(f'<line x1="{pad}" y1="{h}" x2="{width - pad}" y2="{h}" stroke="#999"/>')
    for i, label in enumerate(labels):
        x = pad + i * slot
        for j, (vals, color) in enumerate(((ref, REF_COLOR), (cur, CUR_COLOR))):
            v = vals[i] if i < len(vals) else 0.0
            bh = (h - 10) * v / top
            parts.append(
                f'<rect x="{x + j * bw:.1f}" y="{h - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                f'fill="{color}"><title>{_esc(label)}: {v:.3f}</title></rect>'
            )
        if n <= 12 or i % max(n // 8, 1) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{h + 14}" font-size="9" transform="rotate(30 {x:.1f} '
                f'{h + 14})">{_esc(label[:14])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_svg(points: list[tuple[float, float]], threshold: float, width: int = 480) -> str:
    """PSI per time bucket, with the threshold as a dashed line."""
    h, pad = 120, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h + 30}">']
    if not points:
        parts.append('<text x="10" y="20">no data</text></svg>')
        return "".join(parts)
    top = max(max(p for _, p in points), threshold) * 1.1
    xs = [b for b, _ in points]
    x0, x1 = min(xs), max(xs)

    def sx(b: float) -> float:
        return pad + (width - 2 * pad) * ((b - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(v: float) -> float:
        return h - (h - 10) * v / top

    ty = sy(threshold)
    parts.append(
        f'<line x1="{pad}" y1="{ty:.1f}" x2="{width - pad}" y2="{ty:.1f}" stroke="{BAD}" '
        'stroke-dasharray="4 3"/>'
    )
    path = " ".join(f"{sx(b):.1f},{sy(v):.1f}" for b, v in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{CUR_COLOR}" stroke-width="2"/>')
    for b, v in points:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(b))
        parts.append(
            f'<circle cx="{sx(b):.1f}" cy="{sy(v):.1f}" r="3" fill="{CUR_COLOR}">'
            f"<title>{when}: PSI {v:.3f}</title></circle>"
        )
    for b in (x0, x1):
        parts.append(
            f'<text x="{sx(b) - 20:.1f}" y="{h + 16}" font-size="9">'
            f"{time.strftime('%m-%d %H:%M', time.localtime(b))}</text>"
        )
    parts.append(f'<text x="2" y="{ty - 2:.1f}" font-size="9" fill="{BAD}">{threshold:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row(f: FeatureDrift) -> str:
    cls = "bad" if f.drifted else "ok"
    return (
        f"<tr><td>{_esc(f.feature)}</td><td>{f.kind}</td><td>{f.test}</td>"
        f"<td>{f.statistic:.3f}</td><td>{f.p_value:.2g}</td><td>{f.psi:.3f}</td>"
        f"<td>{f.distance:.3f} ({f.distance_name})</td>"
        f"<td>{f.null_rate_ref:.1%} → {f.null_rate_cur:.1%}</td>"
        f'<td class="{cls}">{"DRIFT" if f.drifted else "ok"}</td></tr>'
    )


def render_html(report: MonitorReport) -> str:
    feats = report.features + ([report.prediction] if report.prediction else [])
    since = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(report.since)) if report.since else "start"
    )
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>keizoku monitor: {_esc(report.model)}</title><style>{CSS}</style></head><body>",
        f"<h1>Drift report: {_esc(report.model)} v{report.version}</h1>",
        f"<p>{report.n_rows:,} rows from {_esc(report.source)}, window {since} → "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(report.until))}. Drift = p &lt; "
        f"{report.config.alpha:g} and PSI ≥ {report.config.psi_threshold:g}.</p>",
    ]
    if report.performance is not None:
        p = report.performance
        out.append(
            f"<p>Live {p.metric}: <b>{p.live:.4f}</b> on {p.n_labels:,} labels; training "
            f"(CV) {p.training:.4f}.</p>"
        )
    out.append(
        "<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p</th>"
        "<th>PSI</th><th>distance</th><th>null rate</th><th>verdict</th></tr>"
    )
    out += [_row(f) for f in feats]
    out.append("</table>")
    out.append(
        f'<p class="legend"><span style="background:{REF_COLOR}"></span>reference (training)'
        f'<span style="background:{CUR_COLOR}"></span>current</p>'
    )
    for f in sorted(feats, key=lambda f: -f.psi):
        title = f"{_esc(f.feature)} — PSI {f.psi:.3f}" + (" (drift)" if f.drifted else "")
        out.append(f'<div class="card"><h3 class="{"bad" if f.drifted else ""}">{title}</h3>')
        out.append(bars_svg(f.labels, f.ref_probs, f.cur_probs))
        series = report.timeline.get(f.feature, [])
        if len(series) > 1:
            out.append(f"<h4>PSI per {'hour' if report.bucket_s == 3600 else 'day'}</h4>")
            out.append(line_svg(series, report.config.psi_threshold))
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(report: MonitorReport, path: str | Path) -> Path:
    atomic_write_text(path, render_html(report))
    return Path(path)
