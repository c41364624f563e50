"""What each console page shows, as plain contexts (dicts, lists, numbers) for its template.

Reads only: the registry (versions, aliases, tags), the lifecycle state, the audit log,
experiments and the pre-aggregated buckets (``keizoku.monitoring.buckets``: never the raw
log), which every worker and server of the home writes to: traffic per version, requests,
errors and latency, drift, the labelled and the estimated live metric. Thresholds are the
spec's (:func:`settings`), as ``keizoku monitor`` reads them. The state changes (promote,
rollback) live in ``keizoku.console.pages`` and go through ``keizoku.lifecycle.experiments``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keizoku import audit
from keizoku.errors import IntegrityError, KeizokuError

if TYPE_CHECKING:
    from keizoku.monitoring.drift import DriftConfig

__all__ = [
    "Settings",
    "audit_context",
    "experiments_context",
    "models_context",
    "monitoring_context",
    "settings",
    "version_context",
]

GATE_TAG, REASONS_TAG = "keizoku.gate", "keizoku.gate_reasons"
TRAFFIC_S = 86400.0  # the Models page's traffic window


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else ""


@dataclass(frozen=True)
class Settings:
    """The spec's thresholds the pages draw: those ``keizoku monitor`` would use here."""

    drift: DriftConfig
    metric_drop: float | None  # retraining.triggers.metric_drop (None: off)
    source: str  # the spec's path, or "" (defaults)


def settings() -> Settings:
    """The ``monitoring:`` section and ``retraining.triggers.metric_drop`` of the spec
    ``keizoku monitor`` reads from the server's folder (the nearest ``keizoku.yaml``)."""
    from keizoku.spec import spec_path

    path = spec_path(None)
    if path is None or not path.is_file():
        return _settings("", 0.0)
    return _settings(str(path.resolve()), path.stat().st_mtime)


@lru_cache(maxsize=8)
def _settings(path: str, mtime: float) -> Settings:
    from keizoku.lifecycle.policy import parse_policy
    from keizoku.monitoring.monitor import drift_config

    if not path:
        return Settings(drift_config(None), parse_policy(None).triggers.metric_drop, "")
    from keizoku.spec import load_spec

    spec, _ = load_spec(Path(path))
    drop = parse_policy(spec.retraining).triggers.metric_drop
    return Settings(drift_config(spec.monitoring), drop, path)


def models_context() -> dict[str, Any]:
    """Every registered model: its versions with state, aliases, gate verdict, and traffic
    (served rows in the last 24 hours, every worker and server of the home)."""
    from keizoku.lifecycle.deployment import load_deployment
    from keizoku.lifecycle.state import states
    from keizoku.monitoring import buckets
    from keizoku.registry.models import list_models, list_versions

    models = []
    for name in list_models():
        by_state = states(name)
        dep = load_deployment(name)
        served = buckets.version_traffic(name, time.time() - TRAFFIC_S)
        versions = [
            {
                "version": v.version,
                "state": by_state.get(v.version, "registered"),
                "aliases": v.aliases,
                "gate": v.tags.get(GATE_TAG, ""),
                "gate_reasons": v.tags.get(REASONS_TAG, ""),
                "metrics": {k: v.metrics[k] for k in sorted(v.metrics)[:3]},
                "created": _when(v.created),
                "served": served.get(v.version, 0),
                "weight": sum(w for a, w in dep.split.items() if a in v.aliases),
            }
            for v in sorted(list_versions(name), key=lambda v: -v.version)
        ]
        models.append({"name": name, "versions": versions, "split": dep.split,
                       "experiment": dep.experiment})  # fmt: skip
    return {"models": models}


def version_context(name: str, version: int) -> dict[str, Any]:
    """One version: metrics, tags, state, gates, schema, card, report link, export files."""
    from keizoku.lifecycle.state import state_of
    from keizoku.registry.models import get_version, recorded_artifacts

    info = get_version(f"{name}:{version}")
    files = sorted(recorded_artifacts(info.tags))
    gate = [e for e in audit.read(name, ("gate",)) if e.get("version") == version]
    card = _artifact_text(name, version, "model_card.md") if "model_card.md" in files else ""
    return {
        "name": name,
        "version": version,
        "state": state_of(name, version),
        "aliases": info.aliases,
        "created": _when(info.created),
        "metrics": sorted(info.metrics.items()),
        "tags": sorted((k, v) for k, v in info.tags.items() if not k.startswith("keizoku.sha")),
        "gate": info.tags.get(GATE_TAG, ""),
        "gate_reasons": info.tags.get(REASONS_TAG, ""),
        "gate_evidence": gate[-1]["evidence"].get("gates") if gate else None,
        "files": files,
        "report": "evaluation.json" in files,
        "card": card,
        "schema": _schema(name, version, files),
        "exports": [f for f in files if f.endswith((".onnx", ".pt", ".zip"))],
    }


def _artifact_text(name: str, version: int, filename: str) -> str:
    """An artifact's text ("" when absent), cached: a registered version's files never
    change (their sha256 is recorded at registration and checked on this first read)."""
    from keizoku.home import home

    return _artifact_cached(str(home()), name, version, filename)


@lru_cache(maxsize=256)
def _artifact_cached(root: str, name: str, version: int, filename: str) -> str:
    from keizoku.registry.models import version_artifact

    try:
        return version_artifact(f"{name}:{version}", filename).read_text(errors="replace")
    except (KeizokuError, OSError):
        return ""


def _schema(name: str, version: int, files: list[str]) -> list[dict[str, Any]]:
    """The training schema's input columns (from ``reference.json``: no model load)."""
    import json

    text = _artifact_text(name, version, "reference.json") if "reference.json" in files else ""
    if not text:
        return []
    feats = json.loads(text).get("features", {})
    return [
        {"name": col, "kind": f.get("kind", ""), "null_rate": f.get("null_rate", 0.0),
         "range": (f"{f['min']:.4g} … {f['max']:.4g}" if f.get("min") is not None else
                   ", ".join(list(f.get("frequencies", {}))[:6]))}
        for col, f in feats.items()
    ]  # fmt: skip


def audit_context(model: str | None, action: str, actor: str, limit: int = 500) -> dict[str, Any]:
    """Entries newest first, filtered; the chain's ``--verify`` status per model."""
    from keizoku.registry.models import list_models

    names = list_models()
    shown = [model] if model else names
    entries: list[dict[str, Any]] = []
    chains = []
    for name in shown:
        try:
            chains.append({"model": name, "ok": True, "entries": audit.verify(name), "error": ""})
        except IntegrityError as exc:
            chains.append({"model": name, "ok": False, "entries": 0, "error": exc.message})
        for e in audit.read(name):
            if action and e.get("action") != action:
                continue
            if actor and actor.lower() not in str(e.get("actor", "")).lower():
                continue
            entries.append(e)
    entries.sort(key=lambda e: -float(e.get("ts", 0)))
    actions = sorted({e.get("action", "") for n in shown for e in audit.read(n)})
    return {"models": names, "model": model or "", "action": action, "actor": actor,
            "actions": actions, "entries": entries[:limit], "total": len(entries),
            "chains": chains}  # fmt: skip


def experiments_context() -> dict[str, Any]:
    """Every experiment of every model; per experiment its sequential test over time."""
    from keizoku.lifecycle.experiments import list_experiments
    from keizoku.registry.models import aliases, list_models

    out = []
    for name in list_models():
        tests = audit.read(name, ("abtest",))
        champion = aliases(name).get("champion")
        for exp in sorted(list_experiments(name), key=lambda e: -e.started):
            runs = [e["evidence"] for e in tests if (e.get("evidence") or {}).get("experiment")
                    == exp.id]  # fmt: skip
            times = [e["time"] for e in tests if (e.get("evidence") or {}).get("experiment")
                     == exp.id]  # fmt: skip
            out.append({
                "model": name, "id": exp.id, "kind": exp.kind, "status": exp.status,
                "control": exp.control.model_dump(), "treatment": exp.treatment.model_dump(),
                "split": exp.split, "started": _when(exp.started), "ended": _when(exp.ended),
                "last": runs[-1] if runs else None, "runs": list(zip(times, runs, strict=True)),
                "chart": _sequence_chart(exp.id, runs) if len(runs) > 1 else None,
                "champion": champion,
            })  # fmt: skip
    return {"experiments": out}


def _sequence_chart(exp_id: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    xs = list(range(1, len(runs) + 1))
    series = [
        {"name": "effect", "xs": xs, "ys": [r.get("effect") for r in runs]},
        {"name": "CI low", "xs": xs, "ys": [r.get("ci_low") for r in runs], "dashed": True},
        {"name": "CI high", "xs": xs, "ys": [r.get("ci_high") for r in runs], "dashed": True},
    ]
    return {"kind": "line", "chart_id": f"seq-{exp_id}", "series": series,
            "title": "Effect and always-valid confidence sequence", "xlabel": "test run",
            "ylabel": "treatment − control", "hline": 0.0, "hline_label": "no effect",
            "markers": True}  # fmt: skip


def _ticks(buckets: list[float], width: int) -> list[tuple[float, str]]:
    if not buckets:
        return []
    fmt = "%m-%d %H:00" if width < 86400 else "%Y-%m-%d"
    step = max(1, len(buckets) // 5)
    return [(b, time.strftime(fmt, time.gmtime(b))) for b in buckets[::step]]


def _line(chart_id: str, title: str, xs: list[float], series: list[dict[str, Any]],
          ylabel: str, width: int, **more: Any) -> dict[str, Any]:  # fmt: skip
    for one in series:
        one.setdefault("xs", xs)
    chart = {"kind": "line", "chart_id": chart_id, "title": title, "series": series,
             "xlabel": "time (UTC)", "ylabel": ylabel, "xticks": _ticks(xs, width)}  # fmt: skip
    return chart | more


def monitoring_context(
    name: str, version: int | None, width: int, span_s: float, conf: Settings
) -> dict[str, Any]:
    """Drift per feature over time, the live metric (labelled and estimated) against the
    training metric, traffic and requests per bucket: all pre-aggregated, all servers."""
    from keizoku.monitoring import buckets
    from keizoku.registry.models import aliases, list_models, require_model

    names = list_models()
    if name not in names:
        require_model(name)  # NotFoundError with a hint
    buckets.catch_up(name)
    version = version or aliases(name).get("champion")
    since = (time.time() // width - span_s // width) * width
    series = buckets.drift_series(name, version, width, since, config=conf.drift) if version else {}
    features = [_feature(f, points, width, conf.drift) for f, points in series.items()]
    features.sort(key=lambda f: (not f["drifted"], f["feature"]))
    training = _training_metric(name, version)
    return {
        "name": name, "models": names, "version": version,
        "width": "hour" if width < 86400 else "day", "features": features,
        "traffic": _traffic(name, width, since), "requests": _requests(name, width, since),
        "training": training, "settings": conf,
        "live": _live(name, version, width, since, training, conf) if version else None,
    }  # fmt: skip


def _feature(feature: str, points: list[Any], width: int, cfg: DriftConfig) -> dict[str, Any]:
    from keizoku.monitoring.buckets import PREDICTION

    label = "prediction" if feature == PREDICTION else feature
    xs = [p.bucket for p in points]
    threshold = max((p.threshold for p in points), default=0.0)
    drifted = [p for p in points if p.drifted]
    judged = [p for p in points if p.n >= cfg.min_rows]
    return {
        "feature": label, "drifted": bool(judged and judged[-1].drifted),
        "drifted_buckets": len(drifted), "buckets": len(points),
        "last": points[-1].distance if points else 0.0, "threshold": threshold,
        "first_drift": _when(drifted[0].bucket) if drifted else "",
        "chart": _line(f"drift-{label}", f"Drift of {label}", xs,
                       [{"name": label, "ys": [p.distance for p in points]}],
                       "distance to training", width, hline=threshold or None,
                       hline_label="threshold"),
    }  # fmt: skip


def _traffic(name: str, width: int, since: float) -> list[dict[str, Any]]:
    """Logged predictions and their latency per bucket (the prediction log's buckets)."""
    from keizoku.monitoring.buckets import traffic_series

    traffic = traffic_series(name, width, since)
    if not traffic:
        return []
    xs = [t.bucket for t in traffic]
    per = "hour" if width < 86400 else "day"
    return [
        _line("traffic", f"Predictions per {per}", xs,
              [{"name": "rows", "ys": [t.n for t in traffic]}], "predictions", width),
        _line("latency", "Latency percentiles (logged)", xs,
              [{"name": "p50", "ys": [t.p50_ms for t in traffic]},
               {"name": "p95", "ys": [t.p95_ms for t in traffic]}],
              "ms (upper bin edge)", width),
    ]  # fmt: skip


def _requests(name: str, width: int, since: float) -> dict[str, Any] | None:
    """Requests, errors (answers ≥ 400) and server-side latency, every process together."""
    from keizoku.monitoring.buckets import percentile, request_series
    from keizoku.serving.metrics import BUCKETS

    points = request_series(name, width, since)
    if not points:
        return None
    total, errors = sum(p.requests for p in points), sum(p.errors for p in points)
    hist = [sum(col) for col in zip(*(p.latency for p in points), strict=True)]
    hour = math.floor(time.time() / 3600) * 3600
    last_hour = sum(p.requests for p in points if p.bucket >= hour) if width < 86400 else None
    xs = [p.bucket for p in points]

    def ms(h: list[int], q: float) -> float:
        return percentile(h, q, BUCKETS) * 1000

    per = "hour" if width < 86400 else "day"
    charts = [
        _line("requests", f"Requests per {per} (all servers)", xs,
              [{"name": "requests", "ys": [p.requests for p in points]},
               {"name": "errors", "ys": [p.errors for p in points], "dashed": True}],
              "requests", width),
        _line("request-latency", "Request latency (server side, all servers)", xs,
              [{"name": q, "ys": [ms(p.latency, v) for p in points]}
               for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))],
              "ms (upper bin edge)", width),
    ]  # fmt: skip
    return {"requests": total, "errors": errors, "error_rate": errors / total if total else 0.0,
            "last_hour": last_hour, "p50_ms": ms(hist, 0.5), "p95_ms": ms(hist, 0.95),
            "p99_ms": ms(hist, 0.99), "charts": charts}  # fmt: skip


def _live(
    name: str, version: int, width: int, since: float, training: dict[str, Any] | None,
    conf: Settings,
) -> dict[str, Any] | None:  # fmt: skip
    """The labelled metric per bucket against the training one, the drop threshold drawn;
    the confidence-based estimate beside it where labels are late."""
    from keizoku.monitoring.buckets import estimate_series, label_series

    labelled = [p for p in label_series(name, version, width, since) if p.value is not None]
    estimated = [p for p in estimate_series(name, version, width, since) if p.value is not None]
    if not labelled and not estimated:
        return None
    metric = labelled[0].metric if labelled else (training or {}).get("metric") or ""
    cv = (training or {}).get("cv_score")
    better = (training or {}).get("greater_is_better", True)
    threshold = None
    if cv is not None and conf.metric_drop is not None:
        threshold = cv - conf.metric_drop if better else cv + conf.metric_drop
    last = labelled[-1] if labelled else None
    dropped = bool(last and threshold is not None and last.value is not None and
                   (last.value <= threshold if better else last.value >= threshold))  # fmt: skip
    xs = sorted({p.bucket for p in labelled} | {p.bucket for p in estimated})
    series: list[dict[str, Any]] = []
    if labelled:
        series.append({"name": f"{metric} (labels)", "xs": [p.bucket for p in labelled],
                       "ys": [p.value for p in labelled]})  # fmt: skip
    same = [p for p in estimated if p.metric == metric]
    if same:
        series.append({"name": f"{metric} (estimated)", "xs": [p.bucket for p in same],
                       "ys": [p.value for p in same], "dashed": True})  # fmt: skip
    if threshold is not None and xs:
        series.append({"name": "alert threshold", "xs": [xs[0], xs[-1]],
                       "ys": [threshold, threshold], "dashed": True})  # fmt: skip
    charts = [_line("live-metric", f"Live {metric} against training", xs, series, metric,
                    width, hline=cv, hline_label="training (cross-validated)",
                    markers=len(xs) < 60)] if series else []  # fmt: skip
    other = [p for p in estimated if p.metric != metric]
    if other:
        ex = [p.bucket for p in other]
        charts.append(_line("estimated-metric", f"Estimated {other[0].metric} (from confidence)",
                            ex, [{"name": other[0].metric, "ys": [p.value for p in other]}],
                            other[0].metric, width))  # fmt: skip
    return {"metric": metric, "training": cv, "threshold": threshold, "dropped": dropped,
            "labels": sum(p.n for p in labelled), "last": last.value if last else None,
            "last_n": last.n if last else 0, "last_when": _when(last.bucket) if last else "",
            "estimated": estimated[-1].value if estimated else None,
            "estimated_metric": estimated[-1].metric if estimated else "",
            "estimated_when": _when(estimated[-1].bucket) if estimated else "",
            "charts": charts}  # fmt: skip


def _training_metric(name: str, version: int | None) -> dict[str, Any] | None:
    import json

    if version is None:
        return None
    text = _artifact_text(name, version, "reference.json")
    if not text:
        return None
    ref = json.loads(text)
    return {"metric": ref.get("metric"), "cv_score": ref.get("cv_score"),
            "greater_is_better": ref.get("greater_is_better", True)}  # fmt: skip
