"""``monitor``: drift and live performance of a model over a window of traffic or a data file."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keizoku.data.labels import canonical, canonical_texts
from keizoku.errors import KeizokuError, NotFoundError
from keizoku.monitoring.drift import (
    BucketCounts,
    DriftConfig,
    FeatureDrift,
    collect_counts,
    compare_categorical,
    compare_numeric,
    merge_levels,
    merge_numeric,
)
from keizoku.monitoring.estimate import EstimatedPerformance, estimate_performance
from keizoku.monitoring.feedback import feedback_glob
from keizoku.monitoring.log import FEATURE_PREFIX, log_scan, segment_glob
from keizoku.monitoring.multivariate import MultivariateDrift, skipped
from keizoku.monitoring.performance import (
    LivePerformance,
    has_files,
    labelled_rows,
    live_performance,
)
from keizoku.monitoring.reference import (
    FeatureRef,
    Reference,
    load_reference,
    load_reference_sample,
)
from keizoku.monitoring.text import load_text_reference, text_drift
from keizoku.sections import validate_section

if TYPE_CHECKING:
    from keizoku.data.ingest import ReadOptions

__all__ = [
    "MonitorReport",
    "monitor",
    "drift_of_source",
    "drift_of_counts",
    "drift_started",
    "per_bucket",
    "recent_drift",
    "drift_config",
    "window_start",
    "rule_text",
    "summary_lines",
    "estimate_lines",
]

PREDICTION = "__prediction__"
HOUR = 3600
SCORE_SAMPLE = 100_000  # logged rows a multiclass estimate reads at most (a seeded sample)


@dataclass
class MonitorReport:
    """What ``keizoku monitor`` shows."""

    model: str
    version: int
    source: str
    since: float | None
    until: float
    n_rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    performance: LivePerformance | None
    bucket_s: float
    timeline: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # distance
    config: DriftConfig = field(default_factory=DriftConfig)
    elapsed_s: float = 0.0
    recent: list[FeatureDrift] = field(default_factory=list)  # the most recent part alone
    recent_since: float | None = None
    buckets: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)  # verdicts
    started: dict[str, float] = field(default_factory=dict)  # first bucket of the drift
    multivariate: MultivariateDrift | None = None
    estimated: EstimatedPerformance | None = None  # the live metric from confidence (CBPE)
    counts_from: str = ""  # where the drift counts came from: buckets, or rows (and why)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per part

    @property
    def drifted(self) -> list[str]:
        """Features drifted over the whole window or over its most recent part."""
        whole = [f.feature for f in self.features if f.drifted]
        return whole + [f for f in self.recent_only if f not in whole]

    @property
    def recent_only(self) -> list[str]:
        """Features drifted in the most recent part that the whole window dilutes."""
        whole = {f.feature for f in self.features if f.drifted}
        return [f.feature for f in self.recent if f.drifted and f.feature not in whole]

    @property
    def any_drift(self) -> bool:
        """A feature drifted, or the domain classifier tells the windows apart."""
        return bool(self.drifted) or bool(self.multivariate and self.multivariate.drifted)

    def to_dict(self) -> dict[str, Any]:
        perf = None
        if self.performance is not None:
            perf = {**self.performance.__dict__, "drop": self.performance.drop}
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "since": self.since,
            "until": self.until,
            "n_rows": self.n_rows,
            "drifted": self.drifted,
            "drifted_recent_only": self.recent_only,
            "features": [f.to_dict() for f in self.features],
            "recent_since": self.recent_since,
            "recent": [f.to_dict() for f in self.recent],
            "buckets": {k: [[b, d] for b, d in v] for k, v in self.buckets.items()},
            "started": self.started,
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "performance": perf,
            "estimated": self.estimated.to_dict() if self.estimated else None,
            "config": self.config.model_dump(),
            "elapsed_s": self.elapsed_s,
            "counts_from": self.counts_from,
            "timings": self.timings,
        }


def rule_text(cfg: DriftConfig) -> str:
    """The drift rule in one sentence, with the thresholds in force."""
    return (
        f"drift = p < {cfg.alpha:g} and distance ≥ {cfg.numeric_threshold:g} "
        f"(Wasserstein/std, numbers; up to {2 * cfg.numeric_threshold:g} in small windows) "
        f"or ≥ {cfg.categorical_threshold:g} (Jensen-Shannon, categories), or a "
        f"null rate with p < {cfg.alpha:g} and Cohen's h ≥ {cfg.null_threshold:g}"
    )


def summary_lines(report: MonitorReport) -> list[str]:
    """What the terminal prints under the table: the recent window, when drift started,
    the multivariate check, and the verdict with the rule."""
    lines: list[str] = []
    when = "%Y-%m-%d %H:%M"
    if report.recent_since is not None:
        recent = {f.feature: f for f in report.recent}
        moved = [f for f in report.recent if f.drifted]
        head = f"Most recent part (from {_when(report.recent_since, when)}): "
        lines.append(head + (", ".join(f.feature for f in moved) + " drifted"
                             if moved else "no feature drifted") + ".")  # fmt: skip
        for f in report.recent_only:
            lines.append(
                f"  {f}: shift confined to the recent part, diluted over the whole window "
                f"({recent[f].reason})"
            )
    for feature, b in report.started.items():
        lines.append(f"{feature}: drift started in the bucket of {_when(b, when)}.")
    m = report.multivariate
    if m is not None:
        lines.append(
            f"Multivariate: skipped: {m.skipped}"
            if m.skipped
            else f"Multivariate: {'DRIFT' if m.drifted else 'ok'}: {m.reason}"
        )
    lines += estimate_lines(report.estimated, when)
    if report.counts_from:
        lines.append(f"Drift counts from {report.counts_from}.")
    drifted = report.drifted
    lines.append(
        (f"Drifted features: {', '.join(drifted)}" if drifted else "No feature drifted.")
        + f" ({rule_text(report.config)}; {report.elapsed_s:.2f}s)"
    )
    return lines


def _metrics_text(values: dict[str, float]) -> str:
    return ", ".join(f"{m} {v:.3f}" for m, v in values.items())


def estimate_lines(e: EstimatedPerformance | None, when: str, last: int = 8) -> list[str]:
    """The live metric estimated from confidence, beside the labelled one, per bucket."""
    if e is None:
        return []
    if e.skipped:
        return [f"Estimated performance: skipped: {e.skipped}"]
    head = f"Estimated from the confidence of {e.n:,} predictions (CBPE): "
    head += _metrics_text(e.estimated)
    if e.training:
        head += f" (training CV {_metrics_text(e.training)})"
    if e.n_labels:
        head += f"; realised on {e.n_labels:,} labels: {_metrics_text(e.realised)}"
    lines = [head + ".", f"  Calibration: {e.note}."]
    if len(e.buckets) > 1:
        m = e.metrics[0]
        shown = e.buckets[-last:]
        cells = [
            f"{_when(b.bucket, when)} {b.estimated[m]:.3f}"
            + (f"/{b.realised[m]:.3f}" if m in b.realised else "")
            for b in shown
        ]
        more = f"last {len(shown)} of {len(e.buckets)} " if len(e.buckets) > last else ""
        lines.append(f"  {m} per {more}bucket (estimated[/realised]): " + ", ".join(cells))
    return lines


def drift_config(section: DriftConfig | Mapping[str, Any] | None) -> DriftConfig:
    """The typed ``monitoring:`` section (validated when given as a mapping)."""
    return validate_section(DriftConfig, section, "monitoring")


def _bucket_width(since: float | None, until: float) -> float:
    if since is None:
        return 86400.0
    return 3600.0 if until - since <= 3 * 86400 else 86400.0


def _judged(reference: Reference, prediction: str | None) -> dict[str, FeatureRef]:
    feats = dict(reference.features)
    if reference.prediction is not None and prediction is not None:
        feats[PREDICTION] = reference.prediction
    return feats


def drift_of_counts(
    counts: BucketCounts,
    feats: dict[str, FeatureRef],
    cfg: DriftConfig,
    keep: set[float] | None = None,
) -> dict[str, FeatureDrift]:
    """Per feature, the verdict over the buckets in ``keep`` (all when None)."""
    out: dict[str, FeatureDrift] = {}
    for name, ref in feats.items():
        if ref.kind == "numeric":
            parts = [c for b, c in counts.numeric[name].items() if keep is None or b in keep]
            out[name] = compare_numeric(name, ref, merge_numeric(parts, len(ref.edges)), cfg)
        else:
            lv = counts.categorical.get(name, {})
            merged = merge_levels([c for b, c in lv.items() if keep is None or b in keep])
            out[name] = compare_categorical(name, ref, merged, cfg)
    return out


def per_bucket(
    counts: BucketCounts, feats: dict[str, FeatureRef], cfg: DriftConfig
) -> dict[str, list[tuple[float, FeatureDrift]]]:
    """Per feature, the verdict of each time bucket on its own, oldest first."""
    out: dict[str, list[tuple[float, FeatureDrift]]] = {name: [] for name in feats}
    for name, ref in feats.items():
        if ref.kind == "numeric":
            for b, c in sorted(counts.numeric[name].items()):
                out[name].append((b, compare_numeric(name, ref, c, cfg)))
        else:
            for b, lv in sorted(counts.categorical.get(name, {}).items()):
                out[name].append((b, compare_categorical(name, ref, lv, cfg)))
    return out


def drift_started(verdicts: list[tuple[float, bool]]) -> float | None:
    """The bucket where drift started: the first of the drifted run that reaches the end,
    else the first drifted bucket; None when no bucket drifted."""
    if not any(d for _, d in verdicts):
        return None
    if verdicts[-1][1]:
        start = len(verdicts) - 1
        while start > 0 and verdicts[start - 1][1]:
            start -= 1
        return verdicts[start][0]
    return next(b for b, d in verdicts if d)


def _rename(results: dict[str, Any]) -> dict[str, Any]:
    if PREDICTION in results:
        results["prediction"] = results.pop(PREDICTION)
    return results


def drift_of_source(
    con: Any,
    source: str,
    reference: Reference,
    columns: dict[str, str],
    prediction: str | None,
    cfg: DriftConfig,
) -> tuple[int, list[FeatureDrift], FeatureDrift | None, dict[str, list[tuple[float, float]]]]:
    """(rows, per-feature drift, prediction drift, distance per bucket per feature)."""
    counts = collect_counts(con, source, reference, columns, prediction)
    n, feats, pred, timeline, _ = _judge(counts, reference, prediction, cfg)
    return n, feats, pred, timeline


# (rows, per-feature drift, prediction drift, distance per bucket, verdict per bucket)
Judged = tuple[
    int,
    list[FeatureDrift],
    FeatureDrift | None,
    dict[str, list[tuple[float, float]]],
    dict[str, list[tuple[float, bool]]],
]


def _judge(
    counts: BucketCounts, reference: Reference, prediction: str | None, cfg: DriftConfig
) -> Judged:
    feats = _judged(reference, prediction)
    results = drift_of_counts(counts, feats, cfg)
    per = _rename(per_bucket(counts, feats, cfg))
    timeline = {k: [(b, f.distance) for b, f in v] for k, v in per.items()}
    verdicts = {k: [(b, f.drifted) for b, f in v if f.n >= cfg.min_rows] for k, v in per.items()}
    pred = results.pop(PREDICTION, None)
    if pred is not None:
        pred.feature = "prediction"
    return sum(counts.rows.values()), list(results.values()), pred, timeline, verdicts


DISTANCE = "distance to centre"  # a clustering's distance drift, listed with the features


def _distance_drift(
    con: Any, source: str, reference: Reference, score: str, cfg: DriftConfig
) -> Judged:
    """A clustering's distances to the assigned centres (``score``) against training's."""
    assert reference.distance is not None
    alone = reference.model_copy(update={"features": {DISTANCE: reference.distance}})
    counts = collect_counts(con, source, alone, {DISTANCE: score}, None)
    return _judge(counts, alone, None, cfg)


def _log_columns(con: Any, pattern: str) -> set[str]:
    cur = con.execute(f"DESCRIBE SELECT * FROM {log_scan(pattern)}")
    return {r[0] for r in cur.fetchall()}


def monitor(
    name: str,
    *,
    version: int | None = None,
    since_s: float | None = None,
    data: str | None = None,
    config: DriftConfig | None = None,
    root: Path | None = None,
    estimate: bool = True,
    read: ReadOptions | None = None,
    rows: bool = False,
) -> MonitorReport:
    """Drift (and live metric where labels arrived) of ``name``'s champion (or ``version``).

    Over the log, the window starts at the whole hour of ``now - since_s``
    (:func:`window_start`), and the per-feature counts are merged from the hourly and
    daily pre-aggregates (``monitoring.buckets``, after folding any segment not folded
    yet) where they hold exactly the window's rows, else counted from the rows (``rows``:
    always; ``counts_from`` says which and why).

    ``estimate=False`` skips the confidence-based estimate (it reads every logged score:
    about 0.5 s per million rows, several seconds for a multiclass model's JSON).
    ``read``: how to read ``data`` (the project's ``data:`` read keys: header, names, …).
    """
    from keizoku.monitoring.duck import duckdb_cursor
    from keizoku.registry.models import resolve

    t0 = time.perf_counter()
    cfg = config or DriftConfig()
    _, v = resolve(f"{name}:{version}" if version is not None else f"{name}@champion")
    reference = load_reference(f"{name}:{v}")
    texts = load_text_reference(f"{name}:{v}")  # text columns' sketches (monitoring/text.py)
    con = duckdb_cursor()  # closed when freed, at the return (with `current_frame`)
    until = time.time()
    since = window_start(until - since_s) if since_s is not None else None
    timings: dict[str, float] = {"reference": time.perf_counter() - t0}
    counts: BucketCounts | None = None
    if data is not None:
        source, columns, pred, perf, scored = _register_file(
            con, name, v, reference, data, read, list(texts.columns) if texts else []
        )
        label, origin = f"file {data}", "the rows of the data file"
        since = None
    else:
        source, columns, pred = log_source(con, name, v, reference, since, until, root)
        label = f"prediction log {Path(segment_glob(name, root)).parent}"
        counts, origin = _bucket_counts(name, v, reference, since, until, root, rows)
        timings["buckets"] = time.perf_counter() - t0 - sum(timings.values())
        perf = live_performance(name, v, reference, since=since, root=root)
        if perf.n_labels == 0:
            perf = None
        scored = _logged_scores(con, source, name, v, reference, since, root) if estimate else None
        timings["estimate"] = time.perf_counter() - t0 - sum(timings.values())
    if counts is None:
        counts = collect_counts(con, source, reference, columns, pred)
        timings["rows"] = time.perf_counter() - t0 - sum(timings.values())
    n, feats, pdrift, timeline, verdicts = _judge(counts, reference, pred, cfg)
    if reference.distance is not None:  # clustering: the distance to the centre (`score`)
        score = "score" if data is not None else f"CASE WHEN version = {v} THEN score END"
        _, more, _, times, marks = _distance_drift(con, source, reference, score, cfg)
        feats, timeline, verdicts = feats + more, timeline | times, verdicts | marks
    if texts is not None and n > 0:  # text columns: vocabulary and embedding shift
        feats = feats + text_drift(con, source, texts, cfg)
    if n == 0:
        raise NotFoundError(
            f"No predictions of '{name}' in the window (since {_when(since)}). "
            "Widen it with --since (e.g. --since 7d)."
        )
    width = _bucket_width(since, until) if data is None else 0.0
    recent, recent_since = recent_drift(counts, reference, pred, cfg, until, width)
    started = {k: b for k, v in verdicts.items() if (b := drift_started(v)) is not None}
    timings["drift"] = time.perf_counter() - t0 - sum(timings.values())
    multi = (
        _multivariate(con, source, columns, reference, f"{name}:{v}", cfg)
        if cfg.multivariate
        else None
    )
    if multi is not None:
        timings["multivariate"] = time.perf_counter() - t0 - sum(timings.values())
    return MonitorReport(
        model=name,
        version=v,
        source=label,
        since=since,
        until=until,
        n_rows=n,
        features=feats,
        prediction=pdrift,
        performance=perf,
        bucket_s=width,
        timeline=timeline,
        config=cfg,
        elapsed_s=time.perf_counter() - t0,
        recent=recent,
        recent_since=recent_since,
        buckets=verdicts,
        started=started,
        multivariate=multi,
        estimated=None if scored is None else estimate_performance(
            scored, reference.calibration, reference.task, reference.metric,
            reference.cv_score, min_rows=cfg.min_rows,
        ),
        counts_from=origin,
        timings={k: round(t, 4) for k, t in timings.items()},
    )  # fmt: skip


def _outcomes(scored: pd.DataFrame, labels: pd.DataFrame, reference: Reference) -> pd.Series:
    """Per scored row: 1/0 for a positive label (binary) or a right prediction
    (multiclass), NaN without a label."""
    if labels.empty:
        return pd.Series(np.nan, index=scored.index)
    by_id = labels.drop_duplicates("request_id", keep="last").set_index("request_id")
    label = scored["request_id"].map(by_id["label"])
    if reference.task == "binary":
        hit = label == (reference.classes or ["", ""])[-1]
    else:
        hit = label == scored["prediction"]
    return hit.astype(float).where(label.notna())


def _has_null_scores(con: Any, window: str) -> bool:
    """Whether some rows of ``window`` lack a score (written before multiclass rows had one)."""
    row = con.execute(f"SELECT count(*) FROM ({window}) WHERE score IS NULL").fetchone()
    return bool(row and row[0])


def _logged_scores(
    con: Any, source: str, name: str, version: int, reference: Reference,
    since: float | None, root: Path | None,
) -> pd.DataFrame:  # fmt: skip
    """(bucket, score, outcome) of the version's logged predictions: the score is
    P(positive) for a binary model, the top probability for a multiclass one (the ``score``
    column; segments written before it held the top probability are parsed from their JSON
    probabilities, on at most ``SCORE_SAMPLE`` rows)."""
    columns = _log_columns(con, segment_glob(name, root))
    if reference.task == "regression" or "score" not in columns:
        return pd.DataFrame(columns=["bucket", "score", "outcome"])  # (older segments)
    labelled = has_files(feedback_glob(name, root))
    keys = ", request_id, prediction" if labelled else ""  # only needed to join labels
    window = f"SELECT * FROM ({source}) WHERE version = {int(version)}"
    parse = (
        reference.task == "multiclass"
        and "probabilities" in columns
        and _has_null_scores(con, window)
    )
    if parse:  # JSON probabilities: parsing a million costs ~20 s
        window = f"SELECT * FROM ({window}) USING SAMPLE reservoir({SCORE_SAMPLE} ROWS) " \
                 "REPEATABLE (0)"  # fmt: skip
    raw = ", probabilities AS raw" if parse else ""
    rows = con.execute(f"SELECT bucket, score{raw}{keys} FROM ({window})").df()
    rows["score"] = pd.to_numeric(rows["score"], errors="coerce")
    if parse:
        missing = rows["score"].isna()
        rows.loc[missing, "score"] = [_top(text) for text in rows.loc[missing, "raw"]]
    labels = pd.DataFrame()
    if labelled:
        labels = labelled_rows(
            name, since=since, columns="p.request_id, p.shadow", root=root, con=con
        )
        labels = labels[~labels["shadow"].astype(bool)]
    rows["outcome"] = _outcomes(rows, labels, reference)
    return rows[["bucket", "score", "outcome"]]


def _top(text: Any) -> float:
    """The top class probability of a logged ``probabilities`` JSON text (NaN if none)."""
    import json

    probs = json.loads(text) if isinstance(text, str) else None
    return max(probs.values()) if isinstance(probs, dict) and probs else float("nan")


def window_start(ts: float) -> float:
    """The start of a log window: the whole hour at or before ``ts``. The window is widened
    by less than an hour so that it is made of whole hourly buckets, which the
    pre-aggregates hold; the row scan uses the same start, so both count the same rows."""
    return math.floor(ts / HOUR) * HOUR


def _bucket_counts(
    name: str, version: int, reference: Reference, since: float | None, until: float,
    root: Path | None, rows: bool,
) -> tuple[BucketCounts | None, str]:  # fmt: skip
    """The window's drift counts merged from the pre-aggregates, and where they came from
    (``None`` and the reason: the caller counts the rows)."""
    import sqlite3

    from keizoku.monitoring import buckets

    if rows:
        return None, "the rows (asked for)"
    try:
        buckets.catch_up(name, root)
        got = buckets.window_counts(
            name, version, reference, since or 0.0, int(_bucket_width(since, until)), root
        )
    except (OSError, sqlite3.Error, KeizokuError) as exc:
        return None, f"the rows (the bucket pre-aggregates could not be read: {exc})"
    if got.counts is None:
        return None, f"the rows ({got.why})"
    return got.counts, f"the bucket pre-aggregates ({got.why})"


def recent_drift(
    counts: BucketCounts,
    reference: Reference,
    prediction: str | None,
    cfg: DriftConfig,
    until: float,
    width: float,
) -> tuple[list[FeatureDrift], float | None]:
    """Verdicts over the buckets that overlap the last ``cfg.recent`` seconds (none when
    that is the whole window: one bucket, or a data file)."""
    if width <= 0:
        return [], None
    keep = {b for b in counts.buckets if b + width > until - cfg.recent}
    if not keep or len(keep) == len(counts.buckets):
        return [], None
    out = _rename(drift_of_counts(counts, _judged(reference, prediction), cfg, keep))
    out.pop("prediction", None)
    return list(out.values()), min(keep)


def _multivariate(
    con: Any, source: str, columns: dict[str, str], reference: Reference, ref: str,
    cfg: DriftConfig,
) -> MultivariateDrift:  # fmt: skip
    """The domain classifier between the version's training sample and a window sample."""
    sample = load_reference_sample(ref)
    if sample is None:
        return skipped(
            f"version {ref} has no reference row sample (trained before it was kept): "
            "retrain it to enable the multivariate check"
        )
    if not columns:
        return skipped("no feature column in the window")
    rows = cfg.multivariate_rows
    cols = ", ".join(f"{expr} AS {_quote(f)}" for f, expr in columns.items())
    cur = con.execute(
        f"SELECT {cols} FROM ({source}) USING SAMPLE reservoir({rows} ROWS) REPEATABLE (0)"
    ).df()
    if len(sample) > rows:
        sample = sample.sample(rows, random_state=0)
    kinds = {f: reference.features[f].kind for f in columns}
    from keizoku.monitoring.multivariate import domain_classifier

    return domain_classifier(sample, cur, kinds, auc_threshold=cfg.auc_threshold, alpha=cfg.alpha)


def log_source(
    con: Any,
    name: str,
    version: int,
    reference: Reference,
    since: float | None,
    until: float,
    root: Path | None = None,
) -> tuple[str, dict[str, str], str]:
    """(SELECT over the log window with a ``bucket`` column, feature columns, prediction)."""
    pattern = segment_glob(name, root)
    if not has_files(pattern):
        raise NotFoundError(
            f"No predictions are logged for model '{name}' under {Path(pattern).parent}. "
            "Serve it with `keizoku serve` (every prediction is logged), or pass --data FILE."
        )
    present = _log_columns(con, pattern)
    columns = {
        f: _quote(FEATURE_PREFIX + f) for f in reference.features if FEATURE_PREFIX + f in present
    }
    width = _bucket_width(since, until)
    window = f"ts >= {since!r} AND " if since is not None else ""
    source = (
        f"SELECT floor(ts / {width}) * {width} AS bucket, * FROM "
        f"{log_scan(pattern)} WHERE {window}NOT shadow"
    )
    kind = reference.prediction.kind if reference.prediction else "numeric"
    pred = (
        f"CASE WHEN version = {version} THEN {'score' if kind == 'numeric' else 'prediction'} END"
    )
    return source, columns, pred


def _when(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ts is None:
        return "the beginning"
    return time.strftime(fmt, time.localtime(ts))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _register_file(
    con: Any, name: str, version: int, reference: Reference, data: str, read: ReadOptions | None,
    texts: list[str],
) -> tuple[str, dict[str, str], str | None, LivePerformance | None, pd.DataFrame]:  # fmt: skip
    """Score a data file with the version and expose it to DuckDB as table ``current``
    (with its text columns ``texts`` for the text drift)."""
    from keizoku.data.ingest import read_table
    from keizoku.registry.models import load_model

    frame = read_table(data, read)
    model = load_model(f"{name}:{version}")
    kept = [f for f in [*reference.features, *texts] if f in frame]
    table = pd.DataFrame({FEATURE_PREFIX + f: frame[f] for f in kept})
    pred: str | None = None
    try:
        raw = model.predict_raw(frame)
    except KeizokuError:  # e.g. a column is missing: feature drift still works
        raw = None
    if raw is not None:
        if reference.distance is not None:  # clustering: the distance, as the server logs it
            table["score"] = model.score_frame(frame)["distance"].to_numpy()
        elif reference.task == "regression":
            table["score"] = np.asarray(raw, dtype=float)
        else:
            table["score"] = raw[:, -1] if raw.shape[1] == 2 else raw.max(axis=1)
            table["prediction"] = [canonical(x) for x in model.labels(raw)]
        pred = (
            "score"
            if reference.prediction and reference.prediction.kind == "numeric"
            else "prediction"
        )
    con.register("current_frame", table)
    columns = {f: _quote(FEATURE_PREFIX + f) for f in reference.features if f in frame}
    perf = _file_performance(frame, raw, version, reference)
    scored = pd.DataFrame({"bucket": 0.0, "score": table.get("score", np.nan)}, index=table.index)
    if raw is not None and reference.task != "regression":
        scored["outcome"] = _file_outcomes(frame, np.asarray(raw), reference)
    else:
        scored["outcome"] = np.nan
    return "SELECT 0.0 AS bucket, * FROM current_frame", columns, pred, perf, scored


def _file_outcomes(frame: pd.DataFrame, raw: np.ndarray, reference: Reference) -> np.ndarray:
    """Per row of a data file: 1/0 as in :func:`_outcomes`, NaN without a known label."""
    out = np.full(len(frame), np.nan)
    if reference.target not in frame.columns:
        return out
    index = {c: i for i, c in enumerate(reference.classes or [])}
    y = canonical_texts(frame[reference.target]).map(index)  # NaN: no label, or unknown
    known = y.notna().to_numpy()
    truth = y[known].to_numpy(dtype=int)
    if reference.task == "binary":
        out[known] = (truth == raw.shape[1] - 1).astype(float)
    else:
        out[known] = (raw[known].argmax(axis=1) == truth).astype(float)
    return out


def _file_performance(
    frame: pd.DataFrame, raw: np.ndarray | None, version: int, reference: Reference
) -> LivePerformance | None:
    from keizoku.training.metrics import get_metric

    if raw is None or reference.target not in frame.columns:
        return None
    y_all = frame[reference.target]
    keep = y_all.notna().to_numpy().copy()
    metric = get_metric(reference.metric, reference.task)  # type: ignore[arg-type]
    if reference.task == "regression":
        y = pd.to_numeric(y_all[keep]).to_numpy(dtype=float)
    else:
        index = {c: i for i, c in enumerate(reference.classes or [])}
        labels = canonical_texts(y_all[keep])
        known = labels.isin(index).to_numpy()
        keep[np.flatnonzero(keep)[~known]] = False
        y = labels[known].map(index).to_numpy(dtype=int)
    try:
        live = metric(y, np.asarray(raw)[keep])
    except ValueError:
        live = float("nan")
    return LivePerformance(
        version, reference.metric, live, reference.cv_score, int(keep.sum()),
        reference.greater_is_better,
    )  # fmt: skip
