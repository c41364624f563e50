"""AutoML quality at equal budget: keizoku vs FLAML vs AutoGluon vs a plain LightGBM baseline.

    python bench/automl.py --datasets bench/datasets.shared.yaml --budget 60 \
        --tools keizoku,flaml,autogluon,lightgbm --out bench/results/automl.json

Every tool gets the same fixed split (80/20, stratified for classification, seed 0, written once
to parquet under bench/work/splits/) and runs in its own subprocess with its own venv python
(bench/runners/run_<tool>.py). A tool that is not installed, fails or runs past its timeout
(budget x 3 + 120 s) is recorded with that status; the harness never stops on it.
Metrics are computed here, from each tool's predictions, the same way for all tools.
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

ALL_TOOLS = ["keizoku", "flaml", "autogluon", "autogluon_best", "lightgbm"]
# tool -> (runner script, extra args)
RUNNERS: dict[str, tuple[str, list[str]]] = {
    "keizoku": ("run_keizoku.py", []),
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
    split_root = WORK / "splits" / result.get("split_tag", "bench-datasets.shared")
    for rec in result["records"]:
        out = Path(rec.get("out_dir") or "")
        if rec.get("status") != "ok" or not (out / "preds.parquet").exists():
            continue
        split = split_root / rec["dataset"]
        task = json.loads((split / "task.json").read_text())
        test = pd.read_parquet(split / "test.parquet")
        rec["metrics"] = score(task, test[task["target"]], pd.read_parquet(out / "preds.parquet"))
    result["summary"] = summarise(result["records"], result["tools"])
    result["rescored"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    write_json(path, result)
    print(f"[automl] rescored {path}")


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
        ranks: dict[str, list[float]] = {t: [] for t in tools}
        gains: dict[str, list[float]] = {t: [] for t in tools}
        wins: dict[str, int] = {t: 0 for t in tools}
        for _, d in grp.groupby("dataset"):
            errs = {}
            for _, r in d.iterrows():
                if r.get("status") == "ok" and isinstance(r.get("metrics"), dict):
                    e = primary_error(r["task"], r["metrics"])
                    if e is not None:
                        errs[r["tool"]] = e
            present = [t for t in tools if t in set(d["tool"])]
            ordered = sorted(errs, key=errs.get)
            for t in present:
                if t in errs:
                    better = sum(1 for u in errs if errs[u] < errs[t])
                    ties = sum(1 for u in errs if errs[u] == errs[t]) - 1
                    ranks[t].append(1 + better + ties / 2)
                else:
                    ranks[t].append(len(present))  # failed / missing: last
            if ordered:  # ties: every tool with the lowest error wins
                for t in ordered:
                    if errs[t] == errs[ordered[0]]:
                        wins[t] += 1
            base = errs.get(baseline)
            if base is not None:
                for t, e in errs.items():
                    worst = max(base, e)
                    gains[t].append((base - e) / worst if worst > 0 else 0.0)
        out[str(int(budget))] = {
            t: {
                "mean_rank": round(sum(ranks[t]) / len(ranks[t]), 2) if ranks[t] else None,
                "norm_score": round(sum(gains[t]) / len(gains[t]), 4) if gains[t] else None,
                "n_scored": len(gains[t]),
                "wins": wins[t],
            }
            for t in tools
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", type=Path, default=BENCH / "datasets.shared.yaml",
                   help="data-set description file (see bench/datasets.shared.yaml)")
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
    specs = load_datasets(args.datasets)
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
    tag = f"{args.datasets.resolve().parent.name}-{args.datasets.stem}"
    split_root = WORK / "splits" / tag
    run_root = WORK / "runs" / stamp

    result: dict[str, Any] = {
        "section": "automl",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "datasets_file": str(args.datasets),
        "split_tag": tag,
        "machine": machine_info(),
        "tools": tools,
        "budgets": budgets,
        "versions": {t: package_versions(t) for t in tools},
        "datasets": {},
        "records": [],
    }
    for spec in specs:
        try:
            task = make_split(spec, split_root / spec.name)
        except Exception as exc:  # noqa: BLE001
            result["datasets"][spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"[automl] {spec.name}: cannot read/split: {exc}", flush=True)
            continue
        result["datasets"][spec.name] = {k: task[k] for k in
                                         ("task", "target", "n_train", "n_test", "n_features")}
        for budget in budgets:
            for tool in tools:
                rec = run_one(tool, split_root / spec.name, task, budget, run_root)
                result["records"].append(rec)
                m = rec.get("metrics", {})
                shown = ", ".join(f"{k}={v:.4f}" for k, v in m.items())
                print(f"[automl] {spec.name:13s} {tool:15s} {int(budget):4d}s "
                      f"{rec['status']:10s} {shown} wall={rec.get('wall_s', 0):.0f}s", flush=True)
                result["summary"] = summarise(result["records"], tools)
                write_json(out_file, result)  # partial results survive an interruption
    result["summary"] = summarise(result["records"], tools)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    write_json(out_file, result)
    print(f"[automl] wrote {out_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
