"""The drift page of ``keizoku monitor --html``: one self-contained file, no scripts, no CDN.

``drift_context`` turns a :class:`MonitorReport` into the plain context of the ``drift``
page of :mod:`keizoku.reporting`; its charts (reference vs current shares per bin or
level, the verdict's effect size per time bucket against its threshold) are specs drawn
there as inline SVG.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from keizoku.monitoring.drift import FeatureDrift
from keizoku.monitoring.monitor import MonitorReport, rule_text
from keizoku.monitoring.reference import OTHER

__all__ = ["drift_context", "render_html", "write_html"]


def _when(ts: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return time.strftime(fmt, time.localtime(ts))


def drift_context(report: MonitorReport) -> dict[str, Any]:
    """What the drift page shows, as plain values; panels drifted first, then by effect
    size relative to its threshold."""
    feats = report.features + ([report.prediction] if report.prediction else [])
    perf = report.performance
    bucket = _bucket(report)
    return {
        "title": f"Drift report: {report.model} v{report.version}",
        "n_rows": report.n_rows,
        "source": report.source,
        "since": _when(report.since) if report.since else "start",
        "until": _when(report.until),
        "rule": rule_text(report.config),
        "recent": None
        if report.recent_since is None
        else {
            "since": _when(report.recent_since),
            "confined": report.recent_only,
            "features": [_row(f) for f in report.recent],
        },
        "multivariate": None if report.multivariate is None else report.multivariate.to_dict(),
        "performance": None
        if perf is None
        else {
            "metric": perf.metric,
            "live": perf.live,
            "training": perf.training,
            "n_labels": perf.n_labels,
        },
        "estimated": _estimated(report),
        "features": [_row(f, report.started.get(f.feature)) for f in feats],
        "panels": [
            {
                "feature": f.feature,
                "psi": f.psi,
                "distance": f.distance,
                "distance_name": f.distance_name,
                "drifted": f.drifted,
                "shares": _shares_chart(f, i),
                "timeline": _timeline_chart(f, i, report.timeline.get(f.feature, []), report),
                "bucket": bucket,
            }
            for i, f in enumerate(sorted(feats, key=_strength))
        ],
    }


def _strength(f: FeatureDrift) -> tuple[bool, float]:
    """Drifted first, then by how far the effect size reaches towards its threshold."""
    return (not f.drifted, -(f.effect / f.threshold if f.threshold else f.distance))


def _finite(v: float | None) -> float | None:
    return v if v is not None and v == v else None


def _estimated(report: MonitorReport) -> dict[str, Any] | None:
    """The CBPE section: overall, per bucket (estimated beside realised), and a chart of
    the first metric over time when there are several buckets."""
    e = report.estimated
    if e is None:
        return None
    if e.skipped:
        return {"skipped": e.skipped}
    m = e.metrics[0]
    rows = [
        {"bucket": _when(b.bucket) if report.bucket_s else "file", "n": b.n,
         "n_labels": b.n_labels, "estimated": b.estimated, "realised": b.realised}
        for b in e.buckets
    ]  # fmt: skip
    chart = _estimate_chart(e.buckets, m, report.bucket_s) if len(e.buckets) > 1 else None
    return {
        "skipped": None, "metrics": e.metrics, "n": e.n, "estimated": e.estimated,
        "training": e.training, "n_labels": e.n_labels, "realised": e.realised,
        "note": e.note, "buckets": rows, "chart": chart,
    }  # fmt: skip


def _estimate_chart(buckets: list[Any], m: str, width: float) -> dict[str, Any]:
    """Metric ``m`` per time bucket: estimated, and realised (dashed) where labels exist."""
    xs = [b.bucket for b in buckets]
    series: list[dict[str, Any]] = [
        {
            "name": "estimated",
            "xs": xs,
            "ys": [_finite(b.estimated[m]) for b in buckets],
            "tips": [f"{_when(b.bucket)}: estimated {m} {b.estimated[m]:.3f} ({b.n} rows)"
                     for b in buckets],
        }
    ]  # fmt: skip
    if any(m in b.realised for b in buckets):
        series.append(
            {
                "name": "realised (labels)",
                "xs": xs,
                "dashed": True,
                "ys": [_finite(b.realised.get(m)) for b in buckets],
                "tips": [f"{_when(b.bucket)}: realised {m} {b.realised.get(m, float('nan')):.3f}"
                         f" ({b.n_labels} labels)" for b in buckets],
            }
        )  # fmt: skip
    return {
        "kind": "line",
        "chart_id": "estimated",
        "series": series,
        "markers": True,
        "title": f"{m} per {'hour' if width == 3600 else 'day'}: estimated vs realised",
        "xlabel": "time bucket (local time)",
        "ylabel": m,
        "xticks": [(b, _when(b, "%m-%d %H:%M")) for b in (xs[0], xs[-1])],
        "xr": (xs[0], xs[-1]) if xs[-1] > xs[0] else None,
    }


def _row(f: FeatureDrift, started: float | None = None) -> dict[str, Any]:
    return {
        "n": f.n,
        "reason": f.reason,
        "started": _when(started) if started is not None else None,
        "feature": f.feature,
        "kind": f.kind,
        "test": f.test,
        "statistic": f.statistic,
        "p_value": f.p_value,
        "psi": f.psi,
        "distance": f.distance,
        "distance_name": f.distance_name,
        "null_rate_ref": f.null_rate_ref,
        "null_rate_cur": f.null_rate_cur,
        "drifted": f.drifted,
    }


def _shares_chart(f: FeatureDrift, i: int) -> dict[str, Any]:
    return {
        "kind": "bar",
        "chart_id": f"shares-{i}",
        "title": f"{f.feature}: share of rows per {'bin' if f.kind == 'numeric' else 'level'}",
        "labels": [_level(str(label)) for label in f.labels],
        "values": list(f.ref_probs),
        "compare": list(f.cur_probs),
        "legend": ["reference (training)", "current"],
        "xlabel": "share of rows (fraction)",
    }


def _timeline_chart(
    f: FeatureDrift, i: int, points: list[tuple[float, float]], report: MonitorReport
) -> dict[str, Any] | None:
    """The verdict's effect size (Wasserstein/std or Jensen-Shannon) per time bucket, its
    drift threshold dashed; None below two buckets."""
    if len(points) < 2:
        return None
    cfg = report.config
    threshold = cfg.numeric_threshold if f.kind == "numeric" else cfg.categorical_threshold
    xs = [b for b, _ in points]
    ys = [d for _, d in points]
    return {
        "kind": "line",
        "chart_id": f"distance-{i}",
        "title": f"{f.feature}: {f.distance_name} per {_bucket(report)}",
        "series": [
            {
                "name": f.distance_name,
                "xs": xs,
                "ys": ys,
                "tips": [f"{_when(b)}: {f.distance_name} {d:.3f}" for b, d in points],
            }
        ],
        "xlabel": "time bucket (local time)",
        "ylabel": f"{f.distance_name} (effect size)",
        "markers": True,
        "hline": threshold,
        "hline_label": f"drift threshold: {f.distance_name} ≥ {threshold:g} (with p < "
        f"{cfg.alpha:g})",
        "xticks": [(b, _when(b, "%m-%d %H:%M")) for b in (xs[0], xs[-1])],
        "xr": (xs[0], xs[-1]) if xs[-1] > xs[0] else None,
        "yr": (0.0, max(max(ys), threshold) * 1.15 or 1.0),
    }


def _bucket(report: MonitorReport) -> str:
    return "hour" if report.bucket_s == 3600 else "day"


def _level(label: str) -> str:
    """A bin or level as the chart shows it: the overflow level named."""
    return "other levels (unseen or rare)" if label == OTHER else label


def render_html(report: MonitorReport) -> str:
    """The drift page of ``report`` as one HTML string."""
    from keizoku.reporting import render

    return render("drift", drift_context(report))


def write_html(report: MonitorReport, path: str | Path) -> Path:
    """Write the drift page of ``report`` to ``path`` (atomically)."""
    from keizoku.reporting import write

    return write("drift", drift_context(report), path)
