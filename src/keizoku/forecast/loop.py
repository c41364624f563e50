"""A forecasting model through the loop: train, register, gate against the champion, admit.

``keizoku train`` on a spec with ``task: forecast`` enters here (``train_forecast_gated``).
The first version becomes champion. Later ones are trained without the latest
``horizon`` periods of each series (the hold-out window); candidate and champion both
forecast that window from the periods before it and the candidate passes when its MASE
there is no worse than the champion's (less ``retraining.gates.min_gain``, in MASE units).
Every move goes through ``keizoku.lifecycle.state.transition`` (audited), as for tabular models.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku import audit
from keizoku.data.ingest import read_table
from keizoku.errors import ConflictError, UserInputError
from keizoku.forecast.model import ForecastModel
from keizoku.forecast.series import Series, split_series, times_of
from keizoku.forecast.spec import ForecastSpec
from keizoku.forecast.train import ForecastResult, _cut, fit_forecast, mase_scale
from keizoku.lifecycle.gates import GateCheck, GateReport
from keizoku.lifecycle.policy import parse_policy
from keizoku.lifecycle.retrain import (
    Admission,
    RetrainOutcome,
    Trigger,
    TriggerKind,
    _champion,
    _undo_candidate,
    admit_candidate,
)
from keizoku.spec import Spec, load_spec

__all__ = [
    "LIVE_TOLERANCE",
    "ForecastOutcome",
    "continued",
    "forecast_spec",
    "holdout_mase",
    "new_periods",
    "retrain_forecast",
    "train_forecast_gated",
]

# `keizoku retrain` fires on a forecasting champion when the live MASE of its logged
# forecasts (against the actuals in the spec's data file) exceeds its CV MASE by this share.
LIVE_TOLERANCE = 0.5


FILES = ("schema.yaml", "leaderboard.csv", "training.json")


@dataclass
class ForecastOutcome:
    name: str
    version: int
    result: ForecastResult
    data_sha256: str
    schema_sha256: str
    phases: dict[str, float] = field(default_factory=dict)
    budget_s: float = 0.0


def forecast_spec(spec: Spec) -> ForecastSpec:
    if spec.forecast is None:
        raise UserInputError(
            "task: forecast needs a forecast: section (at least forecast.time or "
            "forecast.frequency); `keizoku init DATA --target COLUMN --task forecast` writes one."
        )
    return spec.forecast


def _read(spec: Spec, base: Path) -> pd.DataFrame:
    source = spec.data.path
    if source and not Path(source).is_absolute():
        source = str(base / source)
    return read_table(source, spec.data.read_options())


def _sha(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()


def _register(project: str, result: ForecastResult, data_sha: str, params: dict[str, Any]) -> int:
    from keizoku.registry.tracking import TrainingRun

    model = result.model
    with TrainingRun(project, params=params) as run:
        for number, t in enumerate(result.trials):
            metrics = {"cv_score": t["mase"], "mae": t["mae"], "coverage": t["coverage"],
                       "fit_time_s": t["fit_time_s"]}  # fmt: skip
            run.log_trial(number, t["model"], {}, metrics, "ok")
        summary = {"cv_mase": result.cv_score, "coverage": result.coverage,
                   "elapsed_s": result.elapsed_s, "n_trials": len(result.trials)}  # fmt: skip
        run.log_metrics(summary)
        with tempfile.TemporaryDirectory(prefix="keizoku-fc-") as tmp:
            folder = Path(tmp)
            model.schema.save(folder / "schema.yaml")
            result.leaderboard.to_csv(folder / "leaderboard.csv", index=False)
            (folder / "training.json").write_text(json.dumps(model.info, indent=2, default=str))
            names = ("schema", "leaderboard", "training")
            files = {n: folder / f for n, f in zip(names, FILES, strict=True)}
            tags = {
                "keizoku.data_sha256": data_sha,
                "keizoku.schema_sha256": model.schema.fingerprint(),
                "keizoku.metric": "mase",
                "keizoku.cv_score": f"{result.cv_score:.6g}",
                "keizoku.task": "forecast",
                "keizoku.members": str(model.info["family"]),
            }
            return run.register(model, files, tags)


def holdout_mase(model: ForecastModel, full: list[Series], horizon: int) -> float:
    """MASE of ``model`` forecasting the last ``horizon`` periods of each series from the rest."""
    scores = []
    for s in full:
        past = _cut(s, 0, len(s) - horizon)
        point, _ = model.forecast_series(past, horizon, s.exog[len(s) - horizon :])
        mae = float(np.mean(np.abs(s.y[len(s) - horizon :] - point)))
        scores.append(mae / mase_scale(past.y, model.season))
    return float(np.mean(scores))


def _gates(
    name: str, version: int, champion: int, full: list[Series], horizon: int, min_gain: float
) -> tuple[GateReport, dict[str, Any]]:
    from keizoku.registry.models import load_model

    cand, champ = load_model(f"{name}:{version}"), load_model(f"{name}:{champion}")
    if not isinstance(champ, ForecastModel) or not isinstance(cand, ForecastModel):
        raise ConflictError(
            f"{name}:{champion} (champion) is not a forecasting model; a forecasting version "
            "cannot be gated against it. Use a new project name for the forecasting task."
        )
    ours, theirs = holdout_mase(cand, full, horizon), holdout_mase(champ, full, horizon)
    threshold = theirs - min_gain  # MASE units, lower is better
    check = GateCheck(
        "metric", ours <= threshold, ours, threshold,
        f"hold-out MASE {ours:.4f} vs the champion's {theirs:.4f} on the latest {horizon} "
        "period(s) of each series" + ("" if ours <= threshold else ": not better"),
    )  # fmt: skip
    stats = {"metric": "mase", "candidate": ours, "champion": theirs, "window": horizon}
    return GateReport([check]), stats


def train_forecast_gated(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: dict[str, Any] | None = None,
    started: float | None = None,
    actor: str | None = None,
    reason: str = "",
    frame: pd.DataFrame | None = None,
) -> tuple[ForecastOutcome, Admission]:
    """Train a forecaster per the spec, register it and gate it (see the module docstring).

    ``frame``: the table to train on (default: the spec's data file; the retrain passes
    the file continued by the actuals that came in as feedback).
    """
    from keizoku.duration import parse_duration
    from keizoku.names import check_name
    from keizoku.registry.models import delete_version

    clock = started if started is not None else time.monotonic()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    spec, base = load_spec(spec_path)
    check_name(spec.project, "Project name")
    fs = forecast_spec(spec)
    frame = _read(spec, base) if frame is None else frame
    budget = parse_duration(given["budget"]) if "budget" in given else spec.train.budget
    seed = int(given.get("seed") or spec.train.seed or 0)
    champion = _champion(spec.project)
    full, _ = split_series(frame, fs, spec.target, window=fs.window)
    fit_frame = frame
    if champion is not None:  # keep the latest window out of the candidate's fit
        hold_rows = {int(r) - 1 for s in full for r in s.rows[len(s) - fs.horizon :] if r > 0}
        fit_frame = frame.drop(index=frame.index[sorted(hold_rows)])
    read_s = time.monotonic() - clock
    result = fit_forecast(
        fit_frame, spec.target, fs, budget_s=max(budget - read_s, 1.0),
        max_trials=given.get("max_trials") or spec.train.max_trials, seed=seed,
    )  # fmt: skip
    data_sha = _sha(fit_frame)
    params = {"task": "forecast", "target": spec.target, "rows": len(fit_frame),
              "horizon": fs.horizon, "family": result.model.info["family"]}  # fmt: skip
    version = _register(spec.project, result, data_sha, params)
    outcome = ForecastOutcome(
        spec.project, version, result, data_sha, result.model.schema.fingerprint(),
        {"train": time.monotonic() - clock}, budget,
    )  # fmt: skip
    name = spec.project
    try:
        audit.record(
            name, "register", actor=actor, reason=reason, version=version,
            evidence={"data_sha256": data_sha, "schema_sha256": outcome.schema_sha256,
                      "cv_score": result.cv_score, "metric": "mase"},
        )  # fmt: skip
        admission = _admit(name, version, full, fs, spec, actor, reason)
    except BaseException as exc:
        _undo_candidate(name, version, actor, exc, delete_version)
        raise
    outcome.phases["gates"] = time.monotonic() - clock - outcome.phases["train"]
    return outcome, admission


def _admit(
    name: str, version: int, full: list[Series], fs: ForecastSpec, spec: Spec,
    actor: str | None, reason: str,
) -> Admission:  # fmt: skip
    """The tables' admission (lifecycle.retrain.admit_candidate) with the MASE gate."""
    min_gain = parse_policy(spec.retraining).gates.min_gain
    return admit_candidate(
        name, version, lambda champion: _gates(name, version, champion, full, fs.horizon,
                                               min_gain),
        actor=actor, reason=reason,
    )  # fmt: skip


def continued(
    frame: pd.DataFrame, fs: ForecastSpec, target: str, actuals: pd.DataFrame
) -> pd.DataFrame:
    """``frame`` continued by the ``actuals`` (``monitor.stored_actuals``) that extend each
    of its series without a gap after its last period; ``frame`` itself when none do.

    Appended rows carry the series' id values as the data has them, and the time column
    becomes timestamps (the file's own format and the log's need not agree).
    """
    if actuals.empty:
        return frame
    series, freq = split_series(frame, fs, target)
    time_col = fs.time or "time"
    keys = actuals[fs.ids].astype(str).agg("/".join, axis=1) if fs.ids else pd.Series(
        "", index=actuals.index
    )  # fmt: skip
    parts = []
    for s in series:
        mine = actuals[keys == "/".join(map(str, s.key))].set_index(time_col)
        after = pd.date_range(s.index[-1], periods=len(mine) + 1, freq=freq)[1:]
        run = int(np.argmin(np.append(after.isin(mine.index), False)))  # contiguous periods
        if run == 0:
            continue
        part = mine.loc[after[:run], [target, *fs.exogenous]].reset_index(names=time_col)
        for column, value in zip(fs.ids, s.key, strict=True):
            part[column] = value
        parts.append(part)
    if not parts:
        return frame
    out = frame.copy()
    if fs.time is not None:
        out[fs.time] = pd.DatetimeIndex(times_of(frame, fs))
        return pd.concat([out, *parts], ignore_index=True)[frame.columns]
    new = pd.concat(parts, ignore_index=True).drop(columns=time_col)
    return pd.concat([out, new], ignore_index=True)[frame.columns]


def new_periods(info: dict[str, Any], frame: pd.DataFrame, fs: ForecastSpec, target: str) -> int:
    """The most periods any series of ``frame`` has after the last one a version with
    ``info`` was trained on (0 for a version that did not record it)."""
    ends = info.get("ends") or {}
    series, _ = split_series(frame, fs, target)
    counts = [int((s.index > pd.Timestamp(ends[k])).sum())
              for s in series if (k := "/".join(map(str, s.key))) in ends]  # fmt: skip
    return max(counts, default=0)


def retrain_forecast(
    name: str, spec_path: str | Path, champion: int, *, force: bool, actor: str | None
) -> RetrainOutcome:
    """``keizoku retrain`` / ``keizoku loop`` for a forecasting champion.

    The data: the spec's data file, continued by the actuals that came in as feedback
    (``keizoku feedback``; :func:`continued`). Triggers: ``--force``; the live MASE of
    the champion's logged forecasts (against the stored actuals, else the data file)
    above its CV MASE by ``LIVE_TOLERANCE``; at least ``horizon`` new periods in a series
    since the champion's training. Then train (rolling ``forecast.window``), gate, audit.
    """
    from keizoku.forecast.monitor import forecast_error, stored_actuals
    from keizoku.registry.models import load_model

    spec, base = load_spec(spec_path)
    fs = forecast_spec(spec)
    file = _read(spec, base)
    frame = continued(file, fs, spec.target, stored_actuals(name))
    outcome = RetrainOutcome(name, "skipped", champion)
    if force:
        outcome.triggers = [Trigger(TriggerKind.FORCED, "forced (--force)")]
    else:
        live = forecast_error(name, version=champion)
        live = live if live["matched"] else forecast_error(name, file, version=champion)
        limit = live["cv_mase"] * (1 + LIVE_TOLERANCE)
        if live["matched"] and live["mase"] > limit:
            outcome.triggers.append(Trigger(
                TriggerKind.METRIC_DROP,
                f"live MASE {live['mase']:.4f} over {live['matched']} forecast period(s) "
                f"exceeds the CV MASE {live['cv_mase']:.4f} by more than {LIVE_TOLERANCE:.0%}",
            ))  # fmt: skip
        fresh = new_periods(load_model(f"{name}:{champion}").info, frame, fs, spec.target)
        if fresh >= fs.horizon:
            outcome.triggers.append(Trigger(
                TriggerKind.NEW_LABELS,
                f"{fresh} new period(s) since v{champion} was trained (at least the horizon, "
                f"{fs.horizon})",
            ))  # fmt: skip
    triggers = [t.to_dict() for t in outcome.triggers]
    if not outcome.triggers:
        outcome.reasons = ["no trigger fired"]
        return outcome
    because = "; ".join(map(str, outcome.triggers))
    trained, admission = train_forecast_gated(spec_path, actor=actor, reason=because, frame=frame)
    outcome.version = trained.version
    outcome.gates, outcome.stats = admission.gates, admission.stats
    outcome.status = "passed" if admission.passed else "failed"
    outcome.reasons += admission.gates.reasons if admission.gates else []
    outcome.rows = {"periods": int(trained.result.model.info["periods"]),
                    "from_feedback": len(frame) - len(file)}  # fmt: skip
    audit.record(
        name, "retrain", actor=actor, version=outcome.version, previous=champion,
        reason=because,
        evidence={"status": outcome.status, "triggers": triggers, "rows": outcome.rows,
                  "gates": admission.gates.to_dict() if admission.gates else None,
                  "stats": outcome.stats},
    )  # fmt: skip
    return outcome
