"""Drift detection: keizoku monitor vs Evidently's DataDriftPreset on synthetic data,
100k and 1M rows x 20 features (quick: 20k), with drift planted in 5 known features.

    python bench/drift.py --out bench/work/drift.json [--quick] [--rows 100000,1000000]

The generator (seed 0) writes reference.parquet and current.parquet (same size) under
bench/work/drift/<rows>/; features f00..f13 are numeric, f14..f19 categorical, `y` is a binary
target (so keizoku can train the model whose reference statistics it monitors). Planted:
f00 mean +0.5 sd, f01 scale x1.5, f02 log-normal shift, f14 category frequencies, f15 a new
category. Time = the drift computation only (data loading excluded for Evidently; for keizoku the
whole `keizoku monitor` command); peak memory = largest resident set of the process (MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, ROOT, WORK, package_versions, tool_python, write_json  # noqa: E402

PLANTED = ["f00", "f01", "f02", "f14", "f15"]
KEIZOKU_BIN = ROOT / ".venv" / "bin" / "keizoku"


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


def run_keizoku(d: Path, rows: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"tool": "keizoku monitor", "rows": rows, "features": 20,
                           "drifted_planted": len(PLANTED)}
    if not keizoku_has("monitor"):
        return {**rec, "status": "not available (`keizoku monitor` does not exist yet)"}
    # Train a model on reference.parquet (keizoku computes its reference statistics at training),
    # then `keizoku monitor reference --data current.parquet --json` (prints the report as JSON).
    import os
    import shutil

    work = d / "keizoku"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    env = {**os.environ, "KEIZOKU_HOME": str(work / ".keizoku")}
    shutil.copy(d / "reference.parquet", work / "reference.parquet")
    budget = max(30, rows // 10_000)
    for args in (["init", "reference.parquet", "--target", "y", "--task", "binary"],
                 ["train", "--budget", f"{budget}s"]):
        r = subprocess.run([str(KEIZOKU_BIN), *args], cwd=work, env=env, capture_output=True,
                           text=True, timeout=3600)
        if r.returncode != 0:
            return {**rec, "status": f"failed (keizoku {args[0]})",
                    "error": (r.stdout + r.stderr)[-800:]}
    cmd = [sys.executable, str(BENCH / "runners" / "peak.py"), str(KEIZOKU_BIN), "monitor",
           "reference", "--data", str(d / "current.parquet"), "--json"]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    lines = r.stdout.splitlines()
    line = next((ln for ln in lines if ln.startswith("PEAK ")), None)
    if r.returncode != 0 or line is None:
        return {**rec, "status": "failed", "error": (r.stdout + r.stderr)[-800:]}
    peak = json.loads(line[5:])
    found: list[str] = []
    elapsed = None
    try:
        rep = json.loads(next(ln for ln in lines if ln.startswith("{")))
        found = [str(f) for f in rep.get("drifted", [])]
        elapsed = rep.get("elapsed_s")
    except Exception as exc:  # noqa: BLE001
        rec["parse_error"] = str(exc)
    feats = [f for f in found if f != "prediction"]
    return {**rec, "status": "ok", "seconds": peak["seconds"], "peak_rss_mb": peak["peak_rss_mb"],
            "keizoku_elapsed_s": elapsed, "train_budget_s": budget,
            "drifted_found": f"{len(set(feats) & set(PLANTED))}/{len(PLANTED)} "
                             f"+{len(set(feats) - set(PLANTED))} false",
            "drifted": found}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=WORK / "drift.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rows", default="")
    p.add_argument("--tools", default="keizoku,evidently")
    a = p.parse_args(argv)
    rows = [int(r) for r in (a.rows or ("20000" if a.quick else "100000,1000000")).split(",")]
    tools = [t.strip() for t in a.tools.split(",")]
    result: dict[str, Any] = {
        "section": "drift", "results": [], "planted": PLANTED,
        "versions": {"evidently": package_versions("evidently")},
        "note": ("Synthetic data, 20 features (14 numeric, 6 categorical), reference and current "
                 "of equal size, drift planted in " + ", ".join(PLANTED) + ". Evidently time = "
                 "`Report([DataDriftPreset()]).run(...)` + `.dict()` after loading; keizoku time "
                 "= the whole `keizoku monitor NAME --data current.parquet --json` command (CLI "
                 "start, loading, scoring the rows for prediction drift, feature drift against "
                 "the reference statistics stored at training). Peak memory = max resident set "
                 "(MB)."),
    }
    for n in rows:
        d = generate(n, WORK / "drift" / str(n))
        for t in tools:
            rec = run_keizoku(d, n) if t == "keizoku" else run_evidently(d, n)
            print(f"[drift] {n:>8d} rows  {rec['tool']:28s} {rec['status']:10s} "
                  f"{rec.get('seconds', 0):.1f}s {rec.get('peak_rss_mb', 0):.0f} MB "
                  f"{rec.get('drifted_found', '')}", flush=True)
            result["results"].append(rec)
            write_json(a.out, result)
    result["status"] = "ok"
    write_json(a.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
