"""What each console page shows, as plain contexts (dicts, lists, numbers) for its template.

Reads only: the registry (versions, aliases, tags), the lifecycle state, the audit log,
experiments, the pre-aggregated buckets (``keizoku.monitoring.buckets``: never the raw
log) and the server's in-process metrics. The state changes (promote, rollback) live in
``keizoku.console.pages`` and go through ``keizoku.lifecycle.experiments``.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from keizoku import audit
from keizoku.errors import IntegrityError, KeizokuError

__all__ = [
    "audit_context",
    "experiments_context",
    "models_context",
    "monitoring_context",
    "served_counts",
    "version_context",
]

GATE_TAG, REASONS_TAG = "keizoku.gate", "keizoku.gate_reasons"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else ""


def served_counts(metrics: Any) -> dict[tuple[str, int], int]:
    """(model, version) → predictions this server answered (not shadow) since it started."""
    out: dict[tuple[str, int], int] = {}
    for labels, n in dict(getattr(metrics, "predictions", {}) or {}).items():
        d = dict(labels)
        if d.get("shadow") == "true" or not str(d.get("version", "")).isdigit():
            continue
        key = (d["model"], int(d["version"]))
        out[key] = out.get(key, 0) + n
    return out


def models_context(served: dict[tuple[str, int], int]) -> dict[str, Any]:
    """Every registered model: its versions with state, aliases, gate verdict, traffic."""
    from keizoku.lifecycle.deployment import load_deployment
    from keizoku.lifecycle.state import states
    from keizoku.registry.models import list_models, list_versions

    models = []
    for name in list_models():
        by_state = states(name)
        dep = load_deployment(name)
        versions = [
            {
                "version": v.version,
                "state": by_state.get(v.version, "registered"),
                "aliases": v.aliases,
                "gate": v.tags.get(GATE_TAG, ""),
                "gate_reasons": v.tags.get(REASONS_TAG, ""),
                "metrics": {k: v.metrics[k] for k in sorted(v.metrics)[:3]},
                "created": _when(v.created),
                "served": served.get((name, v.version), 0),
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


def monitoring_context(
    name: str, version: int | None, width: int, span_s: float, metrics: Any
) -> dict[str, Any]:
    """Drift per feature over time, traffic and latency per bucket (pre-aggregated), the
    server's error rate, and the training metric."""
    from keizoku.monitoring import buckets
    from keizoku.monitoring.drift import DriftConfig
    from keizoku.registry.models import aliases, list_models, require_model

    names = list_models()
    if name not in names:
        require_model(name)  # NotFoundError with a hint
    buckets.catch_up(name)
    version = version or aliases(name).get("champion")
    since = (time.time() // width - span_s // width) * width
    series = buckets.drift_series(name, version, width, since) if version else {}
    min_rows = DriftConfig().min_rows
    features = []
    for feature, points in series.items():
        label = "prediction" if feature == buckets.PREDICTION else feature
        xs = [p.bucket for p in points]
        threshold = max((p.threshold for p in points), default=0.0)
        drifted = [p for p in points if p.drifted]
        judged = [p for p in points if p.n >= min_rows]
        features.append({
            "feature": label, "drifted": bool(judged and judged[-1].drifted),
            "drifted_buckets": len(drifted),
            "buckets": len(points), "last": points[-1].distance if points else 0.0,
            "threshold": threshold,
            "first_drift": _when(drifted[0].bucket) if drifted else "",
            "chart": {"kind": "line", "chart_id": f"drift-{label}", "title": f"Drift of {label}",
                      "series": [{"name": label, "xs": xs, "ys": [p.distance for p in points]}],
                      "xlabel": "time (UTC)", "ylabel": "distance to training",
                      "hline": threshold or None, "hline_label": "threshold",
                      "xticks": _ticks(xs, width)},
        })  # fmt: skip
    features.sort(key=lambda f: (not f["drifted"], f["feature"]))
    traffic = buckets.traffic_series(name, width, since)
    xs = [t.bucket for t in traffic]
    ticks = _ticks(xs, width)
    per = "hour" if width < 86400 else "day"
    charts = []
    if traffic:
        charts = [
            {"kind": "line", "chart_id": "traffic", "title": f"Predictions per {per}",
             "series": [{"name": "rows", "xs": xs, "ys": [t.n for t in traffic]}],
             "xlabel": "time (UTC)", "ylabel": "predictions", "xticks": ticks},
            {"kind": "line", "chart_id": "latency", "title": "Latency percentiles (logged)",
             "series": [{"name": "p50", "xs": xs, "ys": [t.p50_ms for t in traffic]},
                        {"name": "p95", "xs": xs, "ys": [t.p95_ms for t in traffic]}],
             "xlabel": "time (UTC)", "ylabel": "ms (upper bin edge)", "xticks": ticks},
        ]  # fmt: skip
    return {
        "name": name, "models": names, "version": version, "width": per,
        "features": features, "traffic": charts, "server": _server(name, metrics),
        "training": _training_metric(name, version),
    }  # fmt: skip


def _training_metric(name: str, version: int | None) -> dict[str, Any] | None:
    import json

    if version is None:
        return None
    text = _artifact_text(name, version, "reference.json")
    if not text:
        return None
    ref = json.loads(text)
    return {"metric": ref.get("metric"), "cv_score": ref.get("cv_score")}


def _server(name: str, metrics: Any) -> dict[str, Any] | None:
    """This server's requests, error rate and latency percentiles (since it started)."""
    if metrics is None:
        return None
    from keizoku.serving.metrics import BUCKETS

    total = errors = 0
    for labels, n in dict(metrics.requests).items():
        d = dict(labels)
        if d.get("model") != name:
            continue
        total += n
        errors += n if int(d.get("status", "200")) >= 400 else 0
    counts = [0] * (len(BUCKETS) + 1)
    for labels, hist in dict(metrics.latency).items():
        if dict(labels).get("model") == name:
            counts = [a + b for a, b in zip(counts, hist.counts, strict=True)]
    up = max(time.time() - metrics.started, 1e-9)

    def pct(q: float) -> float | None:
        seen = sum(counts)
        if not seen:
            return None
        run = 0
        for edge, c in zip((*BUCKETS, float("inf")), counts, strict=True):
            run += c
            if run >= q * seen:
                return edge * 1000
        return None

    return {"requests": total, "errors": errors, "error_rate": errors / total if total else 0.0,
            "rate_per_min": total / up * 60, "p50_ms": pct(0.5), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99)}  # fmt: skip
