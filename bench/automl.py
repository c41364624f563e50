"""AutoML quality at equal budget: keizoku vs FLAML vs AutoGluon vs a plain LightGBM baseline.

    python bench/automl.py --datasets bench/datasets.shared.yaml,bench/datasets.pmlb.yaml \
        --budget 60,300 --tools keizoku,flaml,autogluon,autogluon_best,lightgbm \
        --out bench/results/automl.json

Every tool gets the same fixed split (80/20, stratified for classification, seed 0, written once
to parquet under bench/work/splits/) and runs in its own subprocess with its own venv python
(bench/runners/run_<tool>.py). A tool that is not installed, fails or runs past its timeout
(budget x 3 + 120 s) is recorded with that status; the harness never stops on it.
Metrics are computed here, from each tool's predictions, the same way for all tools; so are
the paired bootstrap intervals of keizoku against each peer on every data set (bench/stats.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH,
    WORK,
    load_datasets,
    make_split,
    machine_info,
    package_versions,
    primary_error,
    run_bounded,
    score,
    tool_python,
    write_json,
)
from common import proba_matrix  # noqa: E402
from stats import (  # noqa: E402
    auc_error,
    mean_ranks,
    normalised_score,
    paired_bootstrap,
    rmse_error,
    verdict,
)

ALL_TOOLS = ["keizoku", "keizoku_mlp", "flaml", "autogluon", "autogluon_best", "lightgbm"]
# tool -> (runner script, extra args)
RUNNERS: dict[str, tuple[str, list[str]]] = {
    "keizoku": ("run_keizoku.py", []),
    # the default preset's families plus the PyTorch MLP (issue 17: the ensemble with it
    # against keizoku's default ensemble without it, same split and budget)
    "keizoku_mlp": ("run_keizoku.py", ["--add-family", "torch_mlp"]),
    "lightgbm": ("run_lightgbm.py", []),
    "flaml": ("run_flaml.py", []),
    "autogluon": ("run_autogluon.py", ["--preset", "medium_quality"]),
    "autogluon_best": ("run_autogluon.py", ["--preset", "best_quality"]),
}


def timeout_for(budget: float) -> float:
    return budget * 3 + 120


def run_one(tool: str, split: Path, task: dict[str, Any], budget: float, out_root: Path) -> dict:
    """Run one tool on one split; return a record with status, metrics, timings."""
    rec: dict[str, Any] = {"tool": tool, "dataset": task["name"], "task": task["task"],
                           "budget_s": budget}
    py = tool_python(tool)
    if py is None:
        rec["status"] = "not installed"
        return rec
    rec["loadavg_1m_before"] = round(os.getloadavg()[0], 2)  # other jobs on the machine
    script, extra = RUNNERS[tool]
    out = out_root / f"{task['name']}-{tool}-{int(budget)}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cmd = [str(py), str(BENCH / "runners" / script), "--split", str(split), "--out", str(out),
           "--budget", str(budget), *extra]
    proc = run_bounded(cmd, timeout=timeout_for(budget), cwd=out, log=out / "log.txt",
                       env={"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"})
    rec["wall_s"] = round(proc.seconds, 2)
    rec["out_dir"] = str(out)
    res_file = out / "result.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else {}
    if proc.timed_out:
        rec["status"] = f"timeout ({int(timeout_for(budget))} s)"
        return rec
    if res.get("status") != "ok" or not (out / "preds.parquet").exists():
        rec["status"] = "failed"
        rec["error"] = res.get("error") or proc.stdout_tail[-1500:]
        return rec
    rec.update({k: v for k, v in res.items() if k not in ("status", "traceback")})
    try:
        test = pd.read_parquet(split / "test.parquet")
        preds = pd.read_parquet(out / "preds.parquet")
        if len(preds) != len(test):
            raise ValueError(f"{len(preds)} predictions for {len(test)} test rows")
        rec["metrics"] = score(task, test[task["target"]], preds)
        rec["status"] = "ok"
    except Exception as exc:  # noqa: BLE001
        rec["status"] = "failed"
        rec["error"] = f"scoring: {type(exc).__name__}: {exc}"
    return rec


def rescore(path: Path) -> None:
    """Recompute every metric and the summary of a result file from the saved predictions."""
    result = json.loads(path.read_text())
    for rec in result["records"]:
        out = Path(rec.get("out_dir") or "")
        if rec.get("status") != "ok" or not (out / "preds.parquet").exists():
            continue
        split = split_dir(result, rec["dataset"])
        task = json.loads((split / "task.json").read_text())
        test = pd.read_parquet(split / "test.parquet")
        rec["metrics"] = score(task, test[task["target"]], pd.read_parquet(out / "preds.parquet"))
    result["summary"] = summarise(result["records"], result["tools"])
    result["pairwise"] = pairwise(result)
    result["rescored"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    write_json(path, result)
    print(f"[automl] rescored {path}")


def split_dir(result: dict, dataset: str) -> Path:
    """Where the split of ``dataset`` was written (older results: one split tag per run)."""
    where = result.get("datasets", {}).get(dataset, {}).get("split")
    if where:
        return Path(where)
    return WORK / "splits" / result.get("split_tag", "bench-datasets.shared") / dataset


def summarise(records: list[dict], tools: list[str], baseline: str = "lightgbm") -> dict:
    """Mean rank (1 = best; failed tools rank last) and normalised score per tool and budget.

    normalised score = mean over data sets of (err_base - err_tool) / max(err_base, err_tool),
    where err = 1 - ROC AUC (binary; macro OvR for multiclass) or RMSE (regression) and base is
    the default-parameter LightGBM: in [-1, 1], 0 = same error as the baseline, +0.2 = 20 % less
    error, -0.2 = 20 % more (relative to the worse of the two, so that a data set where the
    baseline is already near-perfect cannot dominate the mean). Only data sets where both the
    tool and the baseline finished.
    """
    out: dict[str, Any] = {}
    df = pd.DataFrame(records)
    if df.empty:
        return out
    for budget, grp in df.groupby("budget_s"):
        errors: dict[str, dict[str, float | None]] = {}
        gains: dict[str, list[float]] = {t: [] for t in tools}
        wins: dict[str, int] = {t: 0 for t in tools}
        for name, d in grp.groupby("dataset"):
            errs: dict[str, float | None] = {}
            for _, r in d.iterrows():
                if r["tool"] not in tools:
                    continue
                ok = r.get("status") == "ok" and isinstance(r.get("metrics"), dict)
                errs[r["tool"]] = primary_error(r["task"], r["metrics"]) if ok else None
            errors[str(name)] = errs
            scored = {t: e for t, e in errs.items() if e is not None}
            if scored:  # ties: every tool with the lowest error wins
                low = min(scored.values())
                for t, e in scored.items():
                    wins[t] += e == low
            base = scored.get(baseline)
            if base is not None:
                for t, e in scored.items():
                    gains[t].append(normalised_score(base, e))
        ranks = mean_ranks(errors, tools)
        out[str(int(budget))] = {
            t: {
                "mean_rank": None if ranks[t] is None else round(ranks[t], 2),
                "norm_score": round(sum(gains[t]) / len(gains[t]), 4) if gains[t] else None,
                "n_scored": len(gains[t]),
                "wins": wins[t],
            }
            for t in tools
        }
    return out


def _error_fn(split: Path, out_dir: Path) -> tuple[Any, int] | None:
    """(err(rows), number of test rows) for one tool's saved predictions."""
    preds_file = out_dir / "preds.parquet"
    if not preds_file.exists():
        return None
    task = json.loads((split / "task.json").read_text())
    test = pd.read_parquet(split / "test.parquet")
    preds = pd.read_parquet(preds_file)
    y = test[task["target"]]
    if task["task"] == "regression":
        return rmse_error(pd.to_numeric(y).to_numpy(float),
                          pd.to_numeric(preds["prediction"]).to_numpy(float)), len(test)
    classes = task["classes"]
    return auc_error(y.astype(str).to_numpy(), proba_matrix(preds, classes), classes), len(test)


def pairwise(result: dict, ours: str = "keizoku", baseline: str = "lightgbm",
             n_boot: int = 500) -> dict:
    """keizoku against each peer on each data set: err(keizoku) - err(peer) with a 95 % paired
    bootstrap interval over the test rows, and its verdict (better / worse / tie); per budget,
    the wins, ties and losses against each peer and the share of data sets where keizoku is
    worse than the baseline beyond the interval. Also keizoku's whole-command wall / budget
    and single-row latency per data set."""
    tools = result.get("tools", [])
    out: dict[str, Any] = {}
    by = {(r["budget_s"], r["dataset"], r["tool"]): r for r in result.get("records", [])}
    for budget in result.get("budgets", []):
        per_set: dict[str, Any] = {}
        for name in result.get("datasets", {}):
            mine = by.get((budget, name, ours))
            if mine is None:
                continue
            row: dict[str, Any] = {
                "wall_ratio": (round(mine["fit_s"] / budget, 3) if mine.get("fit_s") else None),
                "own_wall_ratio": (round(mine["train_wall_s"] / budget, 3)
                                   if mine.get("train_wall_s") else None),
                "latency_ms_p50": mine.get("latency_ms_p50"),
                "vs": {},
            }
            split = split_dir(result, name)
            err_mine = (_error_fn(split, Path(mine["out_dir"]))
                        if mine.get("status") == "ok" else None)
            for peer in tools:
                other = by.get((budget, name, peer))
                if peer == ours or other is None:
                    continue
                if err_mine is None or other.get("status") != "ok":
                    row["vs"][peer] = {"verdict": "no result"}
                    continue
                err_other = _error_fn(split, Path(other["out_dir"]))
                if err_other is None:
                    row["vs"][peer] = {"verdict": "no result"}
                    continue
                ci = paired_bootstrap(err_mine[0], err_other[0], err_mine[1], n_boot=n_boot)
                row["vs"][peer] = {**{k: round(v, 6) for k, v in ci.items()},
                                   "verdict": verdict(ci)}
            per_set[name] = row
        tally = {}
        for peer in tools:
            if peer == ours:
                continue
            verdicts = [r["vs"][peer]["verdict"] for r in per_set.values() if peer in r["vs"]]
            tally[peer] = {v: verdicts.count(v) for v in ("better", "tie", "worse", "no result")}
        base = tally.get(baseline, {})
        judged = sum(base.get(v, 0) for v in ("better", "tie", "worse"))
        ratios = [r["wall_ratio"] for r in per_set.values() if r["wall_ratio"]]
        out[str(int(budget))] = {
            "datasets": per_set,
            "tally": tally,
            "worse_than_baseline_share": (round(base.get("worse", 0) / judged, 4)
                                          if judged else None),
            "wall_ratio_max": max(ratios) if ratios else None,
            "wall_ratio_median": float(pd.Series(ratios).median()) if ratios else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", default=str(BENCH / "datasets.shared.yaml"),
                   help="data-set description file(s), comma list (see "
                        "bench/datasets.shared.yaml; the broad pack: bench/datasets.pmlb.yaml)")
    p.add_argument("--n-boot", type=int, default=500,
                   help="bootstrap resamples per data set and peer (paired, over test rows)")
    p.add_argument("--budget", default="60", help="seconds per data set; comma list: 60,300")
    p.add_argument("--tools", default="keizoku,flaml,autogluon,lightgbm",
                   help=f"comma list of {ALL_TOOLS}")
    p.add_argument("--only", default="", help="comma list of data-set names to run")
    p.add_argument("--quick", action="store_true", help="only data sets marked quick: true")
    p.add_argument("--out", type=Path, default=None, help="JSON result file")
    p.add_argument("--rescore", type=Path, default=None,
                   help="recompute the metrics of this result file from its saved predictions")
    args = p.parse_args(argv)
    if args.rescore:
        rescore(args.rescore)
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in RUNNERS]
    if unknown:
        p.error(f"unknown tool(s) {unknown}; choose from {ALL_TOOLS}")
    budgets = [float(b) for b in str(args.budget).split(",")]
    files = [Path(f.strip()) for f in str(args.datasets).split(",") if f.strip()]
    split_of: dict[str, Path] = {}
    specs = []
    for f in files:  # each pack's splits in a folder of its own
        tag = f"{f.resolve().parent.name}-{f.stem}"
        for spec in load_datasets(f):
            if spec.name in split_of:
                p.error(f"data set {spec.name!r} is named in two description files")
            split_of[spec.name] = WORK / "splits" / tag / spec.name
            specs.append(spec)
    if args.quick:
        specs = [s for s in specs if s.quick]
    if args.only:  # run in the order given
        by_name = {s.name: s for s in specs}
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        missing = [n for n in wanted if n not in by_name]
        if missing:
            p.error(f"--only: unknown data set(s) {missing}; known: {sorted(by_name)}")
        specs = [by_name[n] for n in wanted]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_file = args.out or (WORK / f"automl-{stamp}.json")
    run_root = WORK / "runs" / stamp

    result: dict[str, Any] = {
        "section": "automl",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "datasets_file": str(args.datasets),
        "machine": machine_info(),
        "tools": tools,
        "budgets": budgets,
        "versions": {t: package_versions(t) for t in tools},
        "datasets": {},
        "records": [],
    }
    for spec in specs:
        try:
            task = make_split(spec, split_of[spec.name])
        except Exception as exc:  # noqa: BLE001
            result["datasets"][spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"[automl] {spec.name}: cannot read/split: {exc}", flush=True)
            continue
        result["datasets"][spec.name] = {k: task[k] for k in
                                         ("task", "target", "n_train", "n_test", "n_features")}
        result["datasets"][spec.name]["split"] = str(split_of[spec.name])
        for budget in budgets:
            for tool in tools:
                rec = run_one(tool, split_of[spec.name], task, budget, run_root)
                result["records"].append(rec)
                m = rec.get("metrics", {})
                shown = ", ".join(f"{k}={v:.4f}" for k, v in m.items())
                print(f"[automl] {spec.name:13s} {tool:15s} {int(budget):4d}s "
                      f"{rec['status']:10s} {shown} wall={rec.get('wall_s', 0):.0f}s", flush=True)
                result["summary"] = summarise(result["records"], tools)
                write_json(out_file, result)  # partial results survive an interruption
    result["summary"] = summarise(result["records"], tools)
    print("[automl] paired bootstrap intervals ...", flush=True)
    result["pairwise"] = pairwise(result, n_boot=args.n_boot)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    write_json(out_file, result)
    print(f"[automl] wrote {out_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
