"""Drift detection: keizoku vs Evidently's DataDriftPreset on synthetic data.

    python bench/drift.py --out bench/work/drift.json [--quick] [--parts log,e2e,power]
        [--sizes 1000,10000,100000,1000000] [--trials 10,10,3,1] [--nulls 20,20,6,2]
        [--focus 'mean 0.1 sd=10,20,5,2'] [--kinds 'null,mean 0.1 sd'] [--rows 1000000]
        [--tools keizoku,evidently] [--e2e-tools keizoku] [--reuse]
    python bench/drift.py --markdown bench/work/drift.json   # the docs/benchmarks.md tables

Three parts, in this order (each record is written as soon as it is measured).

**e2e** (`keizoku monitor --data` against Evidently's preset) and **log** (`keizoku monitor`
over the prediction log): the generator (seed 0) writes reference.parquet and current.parquet
(same size, default 1M rows) under bench/work/drift/<rows>/; features f00..f13 are numeric,
f14..f19 categorical, `y` is a binary target (keizoku trains a model on reference.parquet's
first 100k rows, one LightGBM trial: the reference statistics it monitors). Planted: f00 mean
+0.5 sd, f01 scale x1.5, f02 log-normal shift, f14 category frequencies, f15 a new category.
The log part scores current.parquet with that model and logs it as 24 hourly segments of the
last day, folded into the hourly/daily pre-aggregates as the server folds its segments
(bench/runners/drift_log_write.py), then times `keizoku monitor NAME --since 2d --json` twice
(the first right after the writes), then once with --no-multivariate (no domain classifier)
and once with --no-multivariate --from-rows (the row scan instead of the pre-aggregates).
Time = the whole command (CLI start included); for Evidently the report computation after
loading; peak memory = largest resident set of the process (MB).

**power** (detection rate and false alarms): seeded cases of 8 features (n_norm normal,
n_logn log-normal, n_unif uniform, n_miss normal with 5 % nulls, c5 five equal levels, c3 three
levels .5/.3/.2, pa/pb independent standard normals), reference and current of the same size,
one planted change per case (POWER_KINDS) or none (null cases). ``--trials`` planted cases per
kind, ``--nulls`` null cases and ``--focus KIND=...`` a kind's own count, each one number per
size (defaults TRIALS, NULLS, FOCUS: about an hour on 2 quiet cores, Evidently taking ~65 s per
1M case). Detection rate = share of trials where the planted feature is flagged (correlation:
keizoku's domain classifier, or either feature by a per-feature test). False-alarm rate =
flagged features / features judged, over the null cases. Both tools see the same Parquet files;
each tool runs all its cases in one process (smallest first), time per case, peak memory per
size. The seeds are ``[rows, trial, kind index]``; the rule was chosen on other seeds
(bench/runners/drift_choose.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, ROOT, WORK, package_versions, tool_python, write_json  # noqa: E402

PLANTED = ["f00", "f01", "f02", "f14", "f15"]
KEIZOKU_BIN = next((p for p in (ROOT / ".venv" / "bin" / "keizoku",
                                Path(sys.executable).parent / "keizoku") if p.exists()),
                   ROOT / ".venv" / "bin" / "keizoku")

POWER_FEATURES = {"n_norm": "numeric", "n_logn": "numeric", "n_unif": "numeric",
                  "n_miss": "numeric", "c5": "categorical", "c3": "categorical",
                  "pa": "numeric", "pb": "numeric"}
# kind -> (planted features, what is planted)
POWER_KINDS: dict[str, tuple[list[str], str]] = {
    "null": ([], "nothing"),
    "mean 0.1 sd": (["n_norm"], "n_norm + 0.1 sd"),
    "mean 0.2 sd": (["n_norm"], "n_norm + 0.2 sd"),
    "mean 0.3 sd": (["n_norm"], "n_norm + 0.3 sd"),
    "mean 0.5 sd": (["n_norm"], "n_norm + 0.5 sd"),
    "variance x1.25": (["n_norm"], "n_norm: sd 1 -> 1.25 (same mean)"),
    "category share": (["c5"], "c5: share of 'a' 0.20 -> 0.35"),
    "new category": (["c3"], "c3: 5 % of rows a level never seen"),
    "missing rate": (["n_miss"], "n_miss: nulls 5 % -> 15 %, same values otherwise"),
    "correlation": (["pa", "pb"], "pa, pb: correlation 0 -> 0.7, marginals unchanged"),
}

# the full run's cases per size (1k, 10k, 100k, 1M rows a side): planted cases per kind, and
# null cases; sized so that the whole run (Evidently takes ~65 s per 1M case) ends in an hour
TRIALS, NULLS, FOCUS = "10,10,3,1", "20,20,6,2", "10,20,5,2"
NOTE = (
    "**Power**: seeded synthetic cases, 8 features (4 numeric, 2 categorical, a pair of "
    "independent normals), reference and current of the same size, one planted change per "
    "case or none (null). Detection = the planted feature flagged (for the correlation "
    "change: keizoku's domain classifier, or either feature by any per-feature test); false "
    "alarms = features flagged on null cases / features judged. keizoku = the reference "
    "statistics training saves + the DuckDB drift query of `keizoku monitor` + the domain "
    "classifier; Evidently = `Report([DataDriftPreset()])` with its default per-column tests. "
    "**End to end** (20 features, drift planted in " + ", ".join(PLANTED) + "): Evidently "
    "time = `Report([DataDriftPreset()]).run(...)` + `.dict()` after loading; keizoku time = "
    "the whole `keizoku monitor NAME --data current.parquet --json` command (CLI start, "
    "loading, scoring the rows for prediction drift, feature drift, domain classifier). "
    "**Prediction log**: the same model, current.parquet logged as 24 hourly segments; time "
    "= the whole `keizoku monitor NAME --since 2d --json` command (second run, files in the "
    "page cache; the first is `seconds_cold`). Peak memory = max resident set (MB); in the "
    "power part keizoku's includes reading the reference rows to build the sketch that "
    "training saves."
)


def power_frame(n: int, kind: str, rng: np.random.Generator) -> pd.DataFrame:
    """One side of a case: the 8 features, with ``kind`` planted (``"null"``: none)."""
    miss = 0.15 if kind == "missing rate" else 0.05
    shift = float(kind.split()[1]) if kind.startswith("mean") else 0.0
    sd = 1.25 if kind == "variance x1.25" else 1.0
    n_miss = rng.normal(0, 1, n)
    n_miss[rng.random(n) < miss] = np.nan
    share = [0.35, 0.1625, 0.1625, 0.1625, 0.1625] if kind == "category share" else [0.2] * 5
    c3 = rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if kind == "new category":
        c3[rng.random(n) < 0.05] = "new"
    pa = rng.normal(0, 1, n)
    rho = 0.7 if kind == "correlation" else 0.0
    pb = rho * pa + np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    return pd.DataFrame({
        "n_norm": rng.normal(shift, sd, n),
        "n_logn": rng.lognormal(0, 0.5, n),
        "n_unif": rng.uniform(-2, 2, n),
        "n_miss": n_miss,
        "c5": rng.choice(list("abcde"), n, p=share),
        "c3": c3,
        "pa": pa,
        "pb": pb,
    })


def power_cases(sizes: list[int], trials: list[int], nulls: list[int],
                focus: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """Write every case's reference/current Parquet (reused when present); the manifest.

    ``trials``: planted cases per kind, ``nulls``: null cases, one number per size;
    ``focus``: kind -> its own cases per size (the kinds where the rates are close)."""
    cases = []
    for i, (n, t, t0) in enumerate(zip(sizes, trials, nulls, strict=True)):
        for kind in POWER_KINDS:
            count = t0 if kind == "null" else (focus or {}).get(kind, [t] * len(sizes))[i]
            for trial in range(count):
                d = WORK / "drift_power" / str(n) / f"{kind.replace(' ', '_')}-{trial}"
                if not (d / "current.parquet").exists():
                    d.mkdir(parents=True, exist_ok=True)
                    rng = np.random.default_rng([n, trial, list(POWER_KINDS).index(kind)])
                    power_frame(n, "null", rng).to_parquet(d / "reference.parquet", index=False)
                    power_frame(n, kind, rng).to_parquet(d / "current.parquet", index=False)
                cases.append({"dir": str(d), "rows": n, "kind": kind, "trial": trial,
                              "features": POWER_FEATURES})
    return cases


def run_power_tool(tool: str, cases: list[dict[str, Any]], reuse: bool = False) -> dict[str, Any]:
    """Run one tool's runner over the cases: one process, smallest windows first (the tool
    is imported once); the peak memory of a size is the process's largest resident set at
    the end of that size's cases (sizes grow, so it is that size's own peak).

    ``reuse``: read the runner output already in bench/work/drift_power instead (the
    summary keeps the cases every tool ran)."""
    py = Path(sys.executable) if tool == "keizoku" else tool_python("evidently")
    if py is None:
        return {"status": "not installed"}
    out = WORK / "drift_power" / f"out-{tool}.json"
    if not reuse:
        runner = BENCH / "runners" / f"drift_{tool}_power.py"
        man = WORK / "drift_power" / f"manifest-{tool}.json"
        out.unlink(missing_ok=True)
        man.write_text(json.dumps({"cases": sorted(cases, key=lambda c: c["rows"])}))
        r = subprocess.run([str(py), str(runner), str(man), str(out)], capture_output=True,
                           text=True, timeout=6 * 3600)
        if not out.exists():
            return {"status": "failed", "error": (r.stdout + r.stderr)[-800:]}
        status = "ok" if r.returncode == 0 else "partial: " + (r.stdout + r.stderr)[-300:]
    if not out.exists():
        return {"status": "no output to reuse"}
    res = json.loads(out.read_text())
    by_dir = {x["dir"]: x for x in res["results"]}
    peaks: dict[int, float] = {}
    for c in cases:
        if c["dir"] in by_dir:
            peaks[c["rows"]] = max(peaks.get(c["rows"], 0.0), by_dir[c["dir"]]["rss_mb"])
    print(f"[drift] power {tool}: {len(by_dir)} cases, peak {peaks} MB", flush=True)
    return {"status": "ok" if reuse else status, "by_dir": by_dir, "peak_rss_mb": peaks}


def power_summary(cases: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Detection rate per kind and size, false alarms per feature, time per case, per tool."""
    out: dict[str, Any] = {"detection": [], "false_alarms": [], "time": []}
    ok = [r for r in runs.values() if "by_dir" in r]
    cases = [c for c in cases if all(c["dir"] in r["by_dir"] for r in ok)]  # run by every tool
    sizes = sorted({c["rows"] for c in cases})
    for tool, run in runs.items():
        if "by_dir" not in run:
            continue
        got = run["by_dir"]
        for n in sizes:
            mine = [c for c in cases if c["rows"] == n]
            for kind, (planted, _) in POWER_KINDS.items():
                if kind == "null":
                    continue
                ks = [c for c in mine if c["kind"] == kind]
                hits = sum(_detected(tool, kind, planted, got[c["dir"]]) for c in ks)
                out["detection"].append({"tool": tool, "rows": n, "kind": kind,
                                         "detected": hits, "trials": len(ks)})
            nulls = [got[c["dir"]] for c in mine if c["kind"] == "null"]
            for f in POWER_FEATURES:
                out["false_alarms"].append({"tool": tool, "rows": n, "feature": f,
                                            "alarms": sum(f in r["drifted"] for r in nulls),
                                            "trials": len(nulls)})
            if tool == "keizoku":
                out["false_alarms"].append({"tool": tool, "rows": n,
                                            "feature": "(domain classifier)",
                                            "alarms": sum(bool(r["multivariate"]) for r in nulls),
                                            "trials": len(nulls)})
            secs = [got[c["dir"]]["seconds"] for c in mine]
            out["time"].append({"tool": tool, "rows": n, "cases": len(mine),
                                "median_s": float(np.median(secs)),
                                "features_median_s": float(np.median(
                                    [got[c["dir"]].get("seconds_features", np.nan)
                                     for c in mine])),
                                "peak_rss_mb": run["peak_rss_mb"].get(n)})
    return out


def _detected(tool: str, kind: str, planted: list[str], res: dict[str, Any]) -> bool:
    if kind == "correlation":
        return bool(res.get("multivariate")) or bool(set(planted) & set(res["drifted"]))
    return bool(set(planted) & set(res["drifted"]))


def generate(n: int, out: Path, seed: int = 0) -> Path:
    """Write reference/current parquet files (reused if present)."""
    if (out / "current.parquet").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def frame(drift: bool) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for i in range(14):
            if i % 3 == 0:
                v = rng.normal(0, 1, n)
            elif i % 3 == 1:
                v = rng.lognormal(0, 0.5, n)
            else:
                v = rng.uniform(-2, 2, n)
            cols[f"f{i:02d}"] = v
        levels = [list("abcde"), [f"c{j}" for j in range(8)], list("xyz"),
                  [f"k{j}" for j in range(20)], ["yes", "no"], [f"r{j}" for j in range(12)]]
        for j, lv in enumerate(levels):
            cols[f"f{14 + j:02d}"] = rng.choice(lv, n)
        if drift:
            cols["f00"] = cols["f00"] + 0.5
            cols["f01"] = rng.lognormal(0, 0.5, n) * 1.5
            cols["f02"] = rng.lognormal(0.3, 0.6, n) - 2
            cols["f14"] = rng.choice(list("abcde"), n, p=[0.5, 0.2, 0.1, 0.1, 0.1])
            f15 = np.asarray(cols["f15"], dtype=object)
            f15[rng.random(n) < 0.2] = "c_new"
            cols["f15"] = f15
        df = pd.DataFrame(cols)
        logit = 0.8 * df["f03"] - 0.5 * df["f06"] + (df["f18"] == "yes") * 0.7
        df["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        return df

    frame(False).to_parquet(out / "reference.parquet", index=False)
    frame(True).to_parquet(out / "current.parquet", index=False)
    return out


def run_evidently(d: Path, rows: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"tool": "evidently DataDriftPreset", "rows": rows, "features": 20,
                           "drifted_planted": len(PLANTED)}
    py = tool_python("evidently")
    if py is None:
        return {**rec, "status": "not installed"}
    out = d / "evidently.json"
    out.unlink(missing_ok=True)
    r = subprocess.run([str(py), str(BENCH / "runners" / "drift_evidently.py"), str(d), str(out)],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0 or not out.exists():
        return {**rec, "status": "failed", "error": (r.stdout + r.stderr)[-800:]}
    res = json.loads(out.read_text())
    found = res.get("drifted", [])
    return {**rec, "status": "ok", "seconds": res["seconds"], "load_s": res["load_s"],
            "peak_rss_mb": res["peak_rss_mb"],
            "drifted_found": f"{len(set(found) & set(PLANTED))}/{len(PLANTED)} "
                             f"+{len(set(found) - set(PLANTED))} false",
            "drifted": found}


def keizoku_has(cmd: str) -> bool:
    if not KEIZOKU_BIN.exists():
        return False
    r = subprocess.run([str(KEIZOKU_BIN), cmd, "--help"], capture_output=True, timeout=120)
    return r.returncode == 0


# the model `monitor` compares with: one LightGBM trial on at most TRAIN_ROWS reference rows
# (its reference statistics are what matters here, not its quality; the budget is a ceiling
# for a loaded machine, where reading a million rows alone took 6 minutes)
TRAIN_ROWS, TRAIN_BUDGET_S = 100_000, 900


def train_keizoku(d: Path) -> tuple[Path, dict[str, str]] | str:
    """Train a model on reference.parquet once (keizoku computes its reference statistics
    at training): (work folder, environment), or the error."""
    import os
    import shutil

    work = d / "keizoku"
    env = {**os.environ, "KEIZOKU_HOME": str(work / ".keizoku")}
    if (work / ".trained").exists():
        return work, env
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    pd.read_parquet(d / "reference.parquet").head(TRAIN_ROWS).to_parquet(
        work / "reference.parquet", index=False)
    for args in (["init", "reference.parquet", "--target", "y", "--task", "binary"],
                 ["train", "--budget", f"{TRAIN_BUDGET_S}s", "--family", "lightgbm",
                  "--max-trials", "1"]):
        r = subprocess.run([str(KEIZOKU_BIN), *args], cwd=work, env=env, capture_output=True,
                           text=True, timeout=3600)
        if r.returncode != 0:
            return f"keizoku {args[0]}: " + (r.stdout + r.stderr)[-800:]
    (work / ".trained").touch()
    return work, env


def run_keizoku(d: Path, rows: int) -> dict[str, Any]:
    """`keizoku monitor reference --data current.parquet --json` (the report as JSON)."""
    rec: dict[str, Any] = {"tool": "keizoku monitor", "rows": rows, "features": 20,
                           "drifted_planted": len(PLANTED)}
    if not keizoku_has("monitor"):
        return {**rec, "status": "not available (`keizoku monitor` does not exist yet)"}
    trained = train_keizoku(d)
    if isinstance(trained, str):
        return {**rec, "status": "failed (training)", "error": trained}
    work, env = trained
    cmd = [sys.executable, str(BENCH / "runners" / "peak.py"), str(KEIZOKU_BIN), "monitor",
           "reference", "--data", str(d / "current.parquet"), "--json"]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    got = _monitor_output(r)
    if "error" in got:
        return {**rec, "status": "failed", "error": got["error"]}
    return {**rec, "status": "ok", "seconds": got["seconds"], "peak_rss_mb": got["peak_rss_mb"],
            "keizoku_elapsed_s": got["elapsed"], "train_budget_s": TRAIN_BUDGET_S,
            "drifted_found": got["found"], "drifted": got["drifted"]}


def run_keizoku_log(d: Path, rows: int, times: int = 2) -> dict[str, Any]:
    """`keizoku monitor NAME` over the prediction log: a model trained on reference.parquet,
    current.parquet logged as 24 hourly segments of the last day."""
    import shutil

    rec: dict[str, Any] = {"tool": "keizoku monitor (prediction log)", "rows": rows,
                           "features": 20, "drifted_planted": len(PLANTED)}
    trained = train_keizoku(d)
    if isinstance(trained, str):
        return {**rec, "status": "failed (training)", "error": trained}
    work, env = trained
    log = work / "log"
    shutil.rmtree(log, ignore_errors=True)
    env = {**env, "KEIZOKU_LOG_ROOT": str(log)}
    r = subprocess.run([sys.executable, str(BENCH / "runners" / "drift_log_write.py"),
                        "reference", str(d / "current.parquet")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return {**rec, "status": "failed (writing the log)", "error": (r.stdout + r.stderr)[-800:]}
    runs = []
    base = [sys.executable, str(BENCH / "runners" / "peak.py"), str(KEIZOKU_BIN), "monitor",
            "reference", "--since", "2d", "--json"]
    variants = [[]] * times + [["--no-multivariate"], ["--no-multivariate", "--from-rows"]]
    for extra in variants:  # the first cold (right after the writes), then in the page cache
        before = _children_cpu()
        r = subprocess.run(base + extra, cwd=work, env=env, capture_output=True, text=True,
                           timeout=3600)
        got = _monitor_output(r)
        if "error" in got:
            return {**rec, "status": "failed", "error": got["error"]}
        runs.append({**got, "flags": " ".join(extra), "load_1m": _load(),
                     "cpu_s": round(_children_cpu() - before, 2)})
    best = runs[times - 1]
    return {**rec, "status": "ok", "seconds": best["seconds"], "seconds_cold": runs[0]["seconds"],
            "peak_rss_mb": best["peak_rss_mb"], "keizoku_elapsed_s": best["elapsed"],
            "n_rows": best["n_rows"], "drifted_found": best["found"],
            "drifted": best["drifted"], "counts_from": best["counts_from"],
            "timings": best["timings"], "cpu_s": best["cpu_s"], "runs": runs}


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process (and theirs): on a busy
    machine the command's CPU time says more about an idle one than its wall time."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _monitor_output(r: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Time, peak memory and the verdicts of one `keizoku monitor --json` under peak.py."""
    lines = r.stdout.splitlines()
    line = next((ln for ln in lines if ln.startswith("PEAK ")), None)
    if r.returncode not in (0, 10, 11) or line is None:  # 10/11: drift / metric drop found
        return {"error": (r.stdout + r.stderr)[-800:]}
    peak = json.loads(line[5:])
    rep = json.loads(next(ln for ln in lines if ln.startswith("{")))
    found = [str(f) for f in rep.get("drifted", [])]
    feats = [f for f in found if f != "prediction"]
    return {"seconds": peak["seconds"], "peak_rss_mb": peak["peak_rss_mb"],
            "elapsed": rep.get("elapsed_s"), "n_rows": rep.get("n_rows"), "drifted": found,
            "counts_from": rep.get("counts_from"), "timings": rep.get("timings"),
            "found": f"{len(set(feats) & set(PLANTED))}/{len(PLANTED)} "
                     f"+{len(set(feats) - set(PLANTED))} false"}


def _load() -> float:
    import os

    return round(os.getloadavg()[0], 2)


def markdown(result: dict[str, Any]) -> str:
    """The run as the Markdown of docs/benchmarks.md (bench/run.py's drift tables, with
    this run's case counts and the load)."""
    from run import render_drift, render_drift_power

    cfg = result.get("power_config", {})
    loads = [x["load_1m"] for x in result.get("load", [])]
    lines = [result.get("note", ""), "",
             f"Load (1-min average, at each stage): {loads} "
             f"({', '.join(x['stage'] + ' ' + x['utc'] for x in result.get('load', []))} UTC).",
             ""]
    power = result.get("power")
    if power:
        lines += [f"Power: rows per side {cfg.get('sizes')}; cases per planted kind "
                  f"{cfg.get('trials')}, per focus kind {cfg.get('focus')}, null cases "
                  f"{cfg.get('nulls')} (one number per size); status "
                  f"{result.get('power_status')}.", ""]
        lines += render_drift_power(result, power)[2:]
    if result.get("results"):
        lines += render_drift({**result, "power": None, "note": None})
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=WORK / "drift.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", default="power,e2e,log")
    p.add_argument("--sizes", default="", help="power: rows per side (default 1k,10k,100k,1M)")
    p.add_argument("--trials", default="", help="power: planted cases per kind, one per size")
    p.add_argument("--nulls", default="", help="power: null cases, one number per size")
    p.add_argument("--focus", action="append", default=[], metavar="KIND=N,N,..",
                   help="power: this kind's own cases per size (default 'mean 0.1 sd=" +
                   FOCUS + "')")
    p.add_argument("--e2e-tools", default="", help="e2e: tools (default: --tools)")
    p.add_argument("--kinds", default="", help="power: only these planted kinds (comma-separated, "
                   "e.g. 'null,mean 0.1 sd'; default all)")
    p.add_argument("--rows", default="", help="e2e and log: rows (default 1M; quick 20k)")
    p.add_argument("--tools", default="keizoku,evidently")
    p.add_argument("--reuse", action="store_true",
                   help="power: summarise the runner outputs already in bench/work/drift_power")
    p.add_argument("--markdown", type=Path, help="print the Markdown of this result JSON")
    a = p.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(a.markdown.read_text())))
        return 0
    parts = [x.strip() for x in a.parts.split(",")]
    tools = [t.strip() for t in a.tools.split(",")]
    sizes = [int(r) for r in (a.sizes or ("1000,10000" if a.quick
                                          else "1000,10000,100000,1000000")).split(",")]
    trials = [int(t) for t in (a.trials or ("3,3" if a.quick else TRIALS)).split(",")]
    nulls = [int(t) for t in (a.nulls or ("6,6" if a.quick else NULLS)).split(",")]
    result: dict[str, Any] = {
        "section": "drift", "results": [], "planted": PLANTED, "load": [],
        "versions": {"evidently": package_versions("evidently")},
        "power_kinds": {k: v[1] for k, v in POWER_KINDS.items()},
        "power_config": {"sizes": sizes, "trials": trials, "nulls": nulls},
        "note": NOTE,
    }

    def mark(stage: str) -> None:
        result["load"].append({"stage": stage, "load_1m": _load(),
                               "utc": time.strftime("%H:%M:%S", time.gmtime())})
        write_json(a.out, result)

    mark("start")
    rows = [int(r) for r in (a.rows or ("20000" if a.quick else "1000000")).split(",")]
    for n in rows:
        if "e2e" not in parts and "log" not in parts:
            break
        d = generate(n, WORK / "drift" / str(n))
        for t in (a.e2e_tools.split(",") if a.e2e_tools else tools) if "e2e" in parts else []:
            rec = run_keizoku(d, n) if t == "keizoku" else run_evidently(d, n)
            _report(result, rec, n)
            mark(f"e2e {t} {n}")
        if "log" in parts and "keizoku" in tools:
            _report(result, run_keizoku_log(d, n), n)
            mark(f"log {n}")
    if "power" in parts:
        t = (trials * len(sizes))[: len(sizes)] if len(trials) == 1 else trials
        z = (nulls * len(sizes))[: len(sizes)] if len(nulls) == 1 else nulls
        focus = dict(f.split("=", 1) for f in (a.focus or ([] if a.quick else
                                                         ["mean 0.1 sd=" + FOCUS])))
        counts = {k: [int(x) for x in v.split(",")] for k, v in focus.items()}
        result["power_config"]["focus"] = counts
        cases = power_cases(sizes, t, z, counts)
        if a.kinds:
            kinds = [k.strip() for k in a.kinds.split(",")]
            cases = [c for c in cases if c["kind"] in kinds]
        runs = {}
        for tool in tools:
            runs[tool] = run_power_tool(tool, cases, a.reuse)
            mark(f"power {tool}")
        result["power"] = power_summary(cases, runs)
        result["power_status"] = {k: v.get("status") for k, v in runs.items()}
        result["power_errors"] = {k: v["error"] for k, v in runs.items() if "error" in v}
        write_json(a.out, result)
    result["status"] = "ok"
    write_json(a.out, result)
    return 0


def _report(result: dict[str, Any], rec: dict[str, Any], n: int) -> None:
    print(f"[drift] {n:>8d} rows  {rec['tool']:34s} {rec['status']:10s} "
          f"{rec.get('seconds', 0):.1f}s {rec.get('peak_rss_mb', 0):.0f} MB "
          f"{rec.get('drifted_found', '')}", flush=True)
    result["results"].append(rec)


if __name__ == "__main__":
    raise SystemExit(main())
