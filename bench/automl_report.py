"""Tables from one or more ``bench/automl.py`` result files run on the same splits.

    python bench/automl_report.py RESULT.json [RESULT2.json ...] [--out MERGED.json]

The files' records are merged (the same data set and tool twice: the later file wins), the
summary and the paired bootstrap intervals are recomputed over the merged records, and
two Markdown tables are printed:

* **the whole `keizoku train` command against its budget** (issue 12): per data set, the
  wall time of the command measured outside the process (CLI start to exit, with the
  registration and the gates) over the budget, where the time went after the search,
  and the machine's load average before the run;
* **keizoku's default ensemble with and without the PyTorch MLP** (issue 17), when the
  files hold both ``keizoku`` and ``keizoku_mlp``: each one's test error, the paired
  bootstrap verdict of ``keizoku_mlp`` against ``keizoku``, the MLP's own best
  cross-validated score beside the best other family's, and whether the MLP was chosen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "runners"))
from automl import pairwise, summarise  # noqa: E402
from common import primary_error, write_json  # noqa: E402
from run import fmt  # noqa: E402
from run_keizoku import family_best  # noqa: E402

LIMIT = 1.05  # issue 12: the whole command within its budget plus 5 %


def merge(files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {"section": "automl", "sources": [str(f) for f in files],
                              "tools": [], "budgets": [], "datasets": {}, "records": []}
    by_key: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for f in files:
        res = json.loads(f.read_text())
        for t in res.get("tools", []):
            if t not in merged["tools"]:
                merged["tools"].append(t)
        for b in res.get("budgets", []):
            if b not in merged["budgets"]:
                merged["budgets"].append(b)
        for name, info in res.get("datasets", {}).items():
            merged["datasets"].setdefault(name, info)
        for rec in res.get("records", []):
            by_key[(rec["budget_s"], rec["dataset"], rec["tool"])] = rec
        merged.setdefault("machine", res.get("machine"))
    merged["records"] = list(by_key.values())
    return merged


def train_json(rec: dict[str, Any]) -> dict[str, Any]:
    path = Path(rec.get("out_dir") or "") / "train.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wall_table(result: dict[str, Any], budget: float, tool: str) -> list[str]:
    by = {(r["budget_s"], r["dataset"], r["tool"]): r for r in result["records"]}
    lines = [
        "| data set | rows | `keizoku train` wall s | / budget | startup s | search s | "
        "after the search s | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for name, info in result["datasets"].items():
        rec = by.get((budget, name, tool))
        if rec is None:
            continue
        if rec.get("status") != "ok" or not rec.get("fit_s"):
            lines.append(f"| {name} | {info.get('n_train', '–')} | {rec.get('status')} | | | | | |")
            continue
        ratio = rec["fit_s"] / budget
        ratios.append((ratio, name))
        ph = rec.get("train_phases") or {}
        after = sum(v for k, v in ph.items() if k not in ("startup", "read", "search"))
        mark = " **over**" if ratio > LIMIT else ""
        lines.append(
            f"| {name} | {info.get('n_train', '–')} | {rec['fit_s']:.1f} | {ratio:.3f}{mark} | "
            f"{fmt(ph.get('startup'), 1)} | {fmt(ph.get('search'), 1)} | {after:.1f} | "
            f"{fmt(rec.get('loadavg_1m_before'), 2)} |"
        )
    if ratios:
        values = [r for r, _ in ratios]
        over = [n for r, n in ratios if r > LIMIT]
        lines.append("")
        lines.append(
            f"{len(values)} data sets: wall / budget median {statistics.median(values):.3f}, "
            f"max {max(values):.3f} ({max(ratios)[1]}); over {LIMIT}: {len(over)}"
            + (f" ({', '.join(over)})" if over else "")
        )
    return lines


def mlp_table(result: dict[str, Any], budget: float) -> list[str]:
    by = {(r["budget_s"], r["dataset"], r["tool"]): r for r in result["records"]}
    # keizoku's own intervals against keizoku_mlp, read from the other side
    per_set = result["pairwise"].get(str(int(budget)), {}).get("datasets", {})
    flip = {"better": "worse", "worse": "better"}
    lines = [
        "| data set | task | without MLP: test error | with MLP: test error | with vs without "
        "(95 % paired bootstrap) | MLP best CV | best other family CV | MLP in the model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tally = {"better": 0, "tie": 0, "worse": 0, "no result": 0}
    chosen = 0
    for name in result["datasets"]:
        a, b = by.get((budget, name, "keizoku")), by.get((budget, name, "keizoku_mlp"))
        if a is None or b is None:
            continue
        err = {}
        for key, rec in (("a", a), ("b", b)):
            ok = rec.get("status") == "ok" and isinstance(rec.get("metrics"), dict)
            err[key] = primary_error(rec["task"], rec["metrics"]) if ok else None
        verdict = per_set.get(name, {}).get("vs", {}).get("keizoku_mlp", {}).get("verdict")
        verdict = flip.get(verdict, verdict) if verdict else "no result"
        tally[verdict] = tally.get(verdict, 0) + 1
        trained = train_json(b)
        scores = family_best(trained)
        mlp = scores.pop("torch_mlp", None)
        sign = 1 if trained.get("greater_is_better") else -1
        other = max(scores.values(), key=lambda v: sign * v) if scores else None
        members = [m.get("family") for m in (trained.get("best") or {}).get("members") or []]
        used = "torch_mlp" in members
        chosen += used
        lines.append(
            f"| {name} | {a['task']} | {fmt(err['a'])} | {fmt(err['b'])} | {verdict} | "
            f"{fmt(mlp)} | {fmt(other)} | {'yes' if used else 'no'} |"
        )
    lines.append("")
    lines.append(
        "with the MLP against without (test error, paired bootstrap over the test rows): "
        + ", ".join(f"{k} {v}" for k, v in tally.items())
        + f"; the MLP is in the served model on {chosen} data sets"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None, help="write the merged result here")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples per pair")
    p.add_argument("--reuse", action="store_true",
                   help="RESULT is one merged file: reuse its summary and intervals")
    args = p.parse_args(argv)
    if args.reuse and len(args.results) == 1:
        result = json.loads(args.results[0].read_text())
    else:
        result = merge(args.results)
        result["summary"] = summarise(result["records"], result["tools"])
        result["pairwise"] = pairwise(result, n_boot=args.n_boot)
    if args.out:
        write_json(args.out, result)
    for budget in result["budgets"]:
        for tool in ("keizoku", "keizoku_mlp"):
            if any(r["tool"] == tool for r in result["records"]):
                print(f"\n### `keizoku train` wall / budget ({tool}, {int(budget)} s)\n")
                print("\n".join(wall_table(result, budget, tool)))
        if {"keizoku", "keizoku_mlp"} <= set(result["tools"]):
            print(f"\n### The ensemble with and without torch_mlp ({int(budget)} s)\n")
            print("\n".join(mlp_table(result, budget)))
        print(f"\n### Summary ({int(budget)} s)\n")
        for tool, s in result["summary"].get(str(int(budget)), {}).items():
            print(f"- {tool}: {s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
