"""Run the benchmark sections and render docs/benchmarks.md from their JSON.

    python bench/run.py                      # full: automl (60 s and 300 s), serving, drift, rag
    python bench/run.py --quick              # bench-quick: 3 small sets, 20 s, installed tools
    python bench/run.py --sections automl --budgets 60 --tools keizoku,flaml,lightgbm \
        --only titanic,blood,credit_g
    python bench/run.py --render bench/results/A.json [B.json ...]   # re-render the page only

Each section runs in its own subprocess (a crash in one does not lose the others) and writes
its JSON; the run's JSON (bench/results/<timestamp>.json) holds them all. Full runs render
docs/benchmarks.md; quick runs render bench/work/benchmarks-quick.md unless --docs is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, RESULTS, ROOT, WORK, machine_info, write_json  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
ARCHIVE = ROOT / "docs" / "benchmarks-archive.md"
AREAS = {"automl": "AutoML", "serving": "Serving", "drift": "Drift detection", "rag": "Retrieval"}
SECTIONS = ["automl", "serving", "drift", "rag"]
PY = sys.executable


def sh(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, str]:
    """Run a section; stream its output to the console and to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$ " + " ".join(cmd), flush=True)
    out_lines: list[str] = []
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        t_end = time.time() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
            out_lines.append(line)
            if time.time() > t_end:
                proc.kill()
                break
        proc.wait()
    return proc.returncode, "".join(out_lines)


def git_commit() -> str:
    """The checkout's commit (keizoku changes fast: a result belongs to one commit)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return out + ("+uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def rag_text(text: str) -> str:
    """What bench/rag_retrieval.py printed, less progress bars and warnings."""
    keep = []
    for ln in text.splitlines():
        ln = ln.split("\r")[-1].rstrip()
        if "it/s]" in ln or ln.startswith(("Loading", "WARNING", "Warning", "$ ")) or "Warn" in ln[:40]:
            continue
        keep.append(ln)
    return "\n".join(keep).strip()


def run_sections(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    run: dict[str, Any] = {
        "stamp": stamp,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": git_commit(),
        "commands": [" ".join(["python", *sys.argv])],
        "sections": {},
    }
    sec_dir = WORK / "sections" / stamp
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    adopted = dict(a.split("=", 1) for a in args.adopt)
    for sec in sections:
        out = sec_dir / f"{sec}.json"
        log = sec_dir / f"{sec}.log"
        if sec in adopted:  # a section JSON produced earlier (e.g. a long automl run)
            data = json.loads(Path(adopted[sec]).read_text())
            data.setdefault("status", "ok")
            if data.get("command"):
                run["commands"].append(data["command"])
            run["sections"][sec] = data
            continue
        if sec == "automl":
            budgets = args.budgets or ("20" if args.quick else "60,300")
            tools = args.tools or ("keizoku,flaml,autogluon,lightgbm" if args.quick
                                   else "keizoku,flaml,autogluon,autogluon_best,lightgbm")
            cmd = [PY, str(BENCH / "automl.py"), "--datasets", str(args.datasets),
                   "--budget", budgets, "--tools", tools, "--out", str(out)]
            if args.quick:
                cmd.append("--quick")
            if args.only:
                cmd += ["--only", args.only]
            timeout = 24 * 3600
        elif sec == "serving":
            cmd = [PY, str(BENCH / "serving.py"), "--out", str(out)]
            if args.quick:
                cmd.append("--quick")
            timeout = 3600
        elif sec == "drift":
            cmd = [PY, str(BENCH / "drift.py"), "--out", str(out)]
            if args.quick:
                cmd.append("--quick")
            timeout = 3600
        elif sec == "rag":
            script = BENCH / "rag_retrieval.py"
            if not script.exists():
                run["sections"]["rag"] = {"status": "not available",
                                          "note": "bench/rag_retrieval.py does not exist yet"}
                continue
            cmd = [PY, str(script), "--quick", "--out", str(out)]
            timeout = 3600
        else:
            print(f"unknown section {sec!r}; choose from {SECTIONS}", file=sys.stderr)
            continue
        run["commands"].append(" ".join(Path(c).name if c == PY else c for c in cmd))
        t0 = time.perf_counter()
        rc, text = sh(cmd, timeout, log)
        data: dict[str, Any] = {}
        if out.exists():
            try:
                data = json.loads(out.read_text())
            except json.JSONDecodeError as exc:
                data = {"status": "failed", "error": f"bad JSON: {exc}"}
        if sec == "rag":
            data = {"result": data, "table": rag_text(text)}
        data.setdefault("status", "ok" if rc == 0 else f"failed (exit {rc})")
        if rc != 0:
            data["log_tail"] = text[-3000:]
        data["seconds"] = round(time.perf_counter() - t0, 1)
        run["sections"][sec] = data
        write_json(RESULTS / f"{stamp}.json", run)
    return run


# --------------------------------------------------------------------------- rendering


def fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def short_error(err: Any, n: int = 220) -> str:
    """The most telling part of an error text: from its last 'error:'/'Error' on, one line."""
    text = " ".join(str(err or "").split())
    low = text.lower()
    i = max(low.rfind("error:"), low.rfind("error "), low.rfind("exception:"))
    text = text[i:] if i >= 0 else text[-n:]
    return text[:n].replace("`", "'")


def render_automl(sec: dict[str, Any]) -> list[str]:
    L: list[str] = []
    tools: list[str] = sec.get("tools", [])
    recs: list[dict] = sec.get("records", [])
    if not recs:
        return ["No AutoML results (" + str(sec.get("status")) + ").", ""]
    L += ["Command: `" + sec.get("command", "") + "`", ""]
    L += ["Versions (each tool in its own virtual environment):", ""]
    for t in tools:
        v = sec.get("versions", {}).get(t) or {}
        shown = ", ".join(f"{k} {val}" for k, val in v.items()) or "not installed"
        L.append(f"- **{t}**: {shown}")
    L.append("")
    datasets = sec.get("datasets", {})
    for budget in sec.get("budgets", []):
        b = str(int(budget))
        summ = sec.get("summary", {}).get(b, {})
        brecs = [r for r in recs if int(r["budget_s"]) == int(budget)]
        if not brecs:
            continue
        L += [f"### Budget {b} s per data set", ""]
        L += ["| tool | mean rank (1 = best) | normalised score | wins | data sets scored vs baseline |",
              "|---|---|---|---|---|"]
        for t in tools:
            s = summ.get(t, {})
            L.append(f"| {t} | {fmt(s.get('mean_rank'), 2)} | {fmt(s.get('norm_score'), 4)} | "
                     f"{s.get('wins', 0)} | {s.get('n_scored', 0)} |")
        L.append("")
        by = {(r["dataset"], r["tool"]): r for r in brecs}
        names = [d for d in datasets if any((d, t) in by for t in tools)]
        # quality table
        L += ["Test-set quality (binary: ROC AUC; multiclass: macro one-vs-rest ROC AUC; "
              "regression: RMSE). Best per row in bold (every value equal to it at the precision shown; "
              "ranks and wins use the unrounded values).", ""]
        L += ["| data set | task | rows (train) | metric | " + " | ".join(tools) + " |",
              "|---|---|---|---|" + "---|" * len(tools)]
        for d in names:
            info = datasets.get(d, {})
            kind = info.get("task", "")
            key = "rmse" if kind == "regression" else "roc_auc"
            vals = {}
            for t in tools:
                r = by.get((d, t))
                if r and r.get("status") == "ok":
                    vals[t] = r["metrics"].get(key)
            best = (min(vals.values()) if kind == "regression" else max(vals.values())) if vals else None
            cells = []
            for t in tools:
                r = by.get((d, t))
                if r is None:
                    cells.append("–")
                elif r.get("status") != "ok":
                    cells.append(str(r.get("status")))
                else:
                    v = vals.get(t)
                    nd = 2 if kind == "regression" and v is not None and abs(v) >= 100 else 4
                    c = fmt(v, nd)
                    cells.append(f"**{c}**" if c == fmt(best, nd) else c)
            L.append(f"| {d} | {kind} | {info.get('n_train', '')} | {key} | " + " | ".join(cells) + " |")
        L.append("")
        # log loss for classification
        cls = [d for d in names if datasets.get(d, {}).get("task") != "regression"]
        if cls:
            L += ["Test-set log loss (classification):", ""]
            L += ["| data set | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
            for d in cls:
                cells = []
                for t in tools:
                    r = by.get((d, t))
                    cells.append(fmt(r["metrics"].get("log_loss"), 4)
                                 if r and r.get("status") == "ok" else
                                 ("–" if r is None else str(r.get("status"))))
                L.append(f"| {d} | " + " | ".join(cells) + " |")
            L.append("")
        # cost table
        L += ["Fit time (s) / single-row predict latency, median of 200 one-row calls (ms) / "
              "model size on disk:", ""]
        L += ["| data set | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
        for d in names:
            cells = []
            for t in tools:
                r = by.get((d, t))
                if r is None:
                    cells.append("–")
                elif r.get("status") != "ok":
                    cells.append(str(r.get("status")))
                else:
                    cells.append(f"{fmt(r.get('fit_s'), 1)} s / {fmt(r.get('latency_ms_p50'), 2)} ms"
                                 f" / {human_bytes(r.get('model_bytes'))}")
            L.append(f"| {d} | " + " | ".join(cells) + " |")
        L.append("")
        if "keizoku" in tools:
            L += ["keizoku's fit time is the wall time of the `keizoku train` command (CLI start, "
                  "search, ensemble, registration in MLflow); the peers' is their in-process fit "
                  "call. keizoku's latency is `load_model(...).predict_records([record])` on a "
                  "JSON record; the peers' is their predict/predict_proba on a one-row DataFrame. "
                  "keizoku's size is the registered `keizoku_model.pkl`; AutoGluon's its whole "
                  "predictor folder; FLAML's/LightGBM's the pickled fitted object.", ""]
        L += render_pairwise(sec, b, tools)
        loads = sorted(r["loadavg_1m_before"] for r in brecs if "loadavg_1m_before" in r)
        if loads:
            L += [f"Machine load while this ran (1-min load average before each tool run, "
                  f"{sec.get('machine', {}).get('nproc', '?')} cores): min {loads[0]:.1f}, "
                  f"median {loads[len(loads) // 2]:.1f}, max {loads[-1]:.1f}. Above the core "
                  "count, other jobs were competing for the CPU: fit budgets bought less search "
                  "and latencies are inflated.", ""]
        fails = [r for r in brecs if r.get("status") not in ("ok", "not installed")]
        if fails:
            L += ["Failures (first line of the error):", ""]
            for r in fails:
                L.append(f"- {r['dataset']} / {r['tool']}: {r['status']}"
                         + (f" — `{short_error(r.get('error'))}`" if r.get("error") else ""))
            L.append("")
    return L


VERDICT = {"better": "better", "worse": "**worse**", "tie": "tie", "no result": "–"}


def render_pairwise(sec: dict[str, Any], budget: str, tools: list[str]) -> list[str]:
    """keizoku against each peer per data set (paired bootstrap), its whole-command
    wall / budget and its single-row latency."""
    pw = sec.get("pairwise", {}).get(budget)
    if not pw:
        return []
    peers = [t for t in tools if t != "keizoku"]
    L = ["keizoku against each peer, per data set: the verdict of a 95 % paired bootstrap "
         "interval of err(keizoku) − err(peer) over the test rows (better / worse: the "
         "interval excludes 0; err as for the ranks), the whole `keizoku train` command's wall "
         "time over its budget (measured outside the process), and keizoku's single-row "
         "latency:", ""]
    L += ["| data set | " + " | ".join(f"vs {p}" for p in peers)
          + " | wall / budget | latency ms |", "|---|" + "---|" * (len(peers) + 2)]
    for name, row in pw["datasets"].items():
        cells = []
        for peer in peers:
            v = row["vs"].get(peer)
            if not v:
                cells.append("–")
                continue
            shown = VERDICT.get(v["verdict"], v["verdict"])
            if "delta" in v:
                shown += f" ({v['delta']:+.4g} [{v['low']:+.3g}, {v['high']:+.3g}])"
            cells.append(shown)
        ratio = row.get("wall_ratio")
        flag = " **over**" if ratio is not None and ratio > 1.05 else ""
        L.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(ratio, 3)}{flag} | "
                 f"{fmt(row.get('latency_ms_p50'), 3)} |")
    L.append("")
    return L


def automl_headline(sec: dict[str, Any]) -> list[str]:
    """The AutoML summary: per budget, mean rank, normalised score, keizoku's wins / ties /
    losses against each peer, the share of sets worse than LightGBM, wall / budget."""
    L: list[str] = []
    tools = sec.get("tools", [])
    n_sets = len(sec.get("datasets", {}))
    for budget in sec.get("budgets", []):
        b = str(int(budget))
        summ = sec.get("summary", {}).get(b, {})
        pw = sec.get("pairwise", {}).get(b, {})
        L += [f"Budget {b} s, {n_sets} data sets:", "",
              "| tool | mean rank | normalised score | keizoku better / tie / worse (95 % paired "
              "bootstrap) |", "|---|---|---|---|"]
        for t in tools:
            s = summ.get(t, {})
            tally = pw.get("tally", {}).get(t)
            judged = sum(tally.get(v, 0) for v in ("better", "tie", "worse")) if tally else 0
            vs = (f"{tally.get('better', 0)} / {tally.get('tie', 0)} / {tally.get('worse', 0)}"
                  if judged else "no result" if tally else "")
            L.append(f"| {t} | {fmt(s.get('mean_rank'), 2)} | {fmt(s.get('norm_score'), 4)} | "
                     f"{vs} |")
        share = pw.get("worse_than_baseline_share")
        L += ["", f"keizoku worse than default LightGBM beyond the interval on "
              f"{'–' if share is None else f'{share:.1%}'} of the data sets; `keizoku train` "
              f"wall / budget: median {fmt(pw.get('wall_ratio_median'), 3)}, max "
              f"{fmt(pw.get('wall_ratio_max'), 3)} (promise: ≤ 1.05).", ""]
    return L


def area_headline(area: str, sec: dict[str, Any]) -> list[str]:
    if area == "automl":
        return automl_headline(sec)
    if area == "serving":
        return render_serving(sec)
    if area == "drift":
        rows = sec.get("results", [])
        power = sec.get("power")
        if power:
            return render_drift_power(sec, power)[:6 + len(sec.get("power_kinds", {}))]
        return render_drift(sec) if rows else [f"No drift results ({sec.get('status')}).", ""]
    if area == "rag":
        return [sec.get("table") or f"No retrieval results ({sec.get('status')}).", ""]
    return []


def run_context(run: dict[str, Any], sec: dict[str, Any]) -> str:
    """One line: when, which commit, which machine, how loaded."""
    m = run.get("machine", {})
    loads = sorted(r["loadavg_1m_before"] for r in sec.get("records", [])
                   if "loadavg_1m_before" in r)
    load = (f"load (1-min) median {loads[len(loads) // 2]:.1f}, max {loads[-1]:.1f}" if loads
            else f"load at start {run['load_start'][0]:.1f}" if run.get("load_start")
            else "load not recorded")
    return (f"Run {run.get('stamp')} ({run.get('mode')}), {run.get('date')}, commit "
            f"{run.get('git_commit') or '?'}; {m.get('nproc')} cores ({m.get('cpu')}), "
            f"{m.get('memory_gib')} GiB; {load}.")


def current_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each area, the latest run (by stamp) that has it: full runs before quick ones."""
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(runs, key=lambda r: (r.get("mode") == "full", str(r.get("stamp"))))
    for run in ordered:
        for area in AREAS:
            if area in run.get("sections", {}):
                out[area] = run
    return out


def status_cell(r: dict[str, Any]) -> str:
    st = str(r.get("status", "ok"))
    if st != "ok" and r.get("error"):
        st += ": " + short_error(r["error"], 160).replace("|", "/")
    return st


def render_serving(sec: dict[str, Any]) -> list[str]:
    rows = sec.get("results", [])
    L = []
    if sec.get("note"):
        L += [sec["note"], ""]
    if not rows:
        return L + [f"No serving results ({sec.get('status')}).", ""]
    L += ["| server | connections | requests/s | p50 ms | p99 ms | errors | status |",
          "|---|---|---|---|---|---|---|"]
    names = {"keizoku": "keizoku serve", "mlflow": "mlflow models serve (same model)",
             "bentoml": "BentoML service (same model via mlflow.pyfunc)"}
    for r in rows:
        L.append(f"| {names.get(r.get('server'), r.get('server'))} | {r.get('connections', '–')} | {fmt(r.get('rps'), 0)} | "
                 f"{fmt(r.get('p50_ms'), 2)} | {fmt(r.get('p99_ms'), 2)} | {r.get('errors', '–')} | "
                 f"{status_cell(r)} |")
    return L + [""]


def render_drift(sec: dict[str, Any]) -> list[str]:
    rows = sec.get("results", [])
    L = []
    if sec.get("note"):
        L += [sec["note"], ""]
    power = sec.get("power")
    if power:
        L += render_drift_power(sec, power)
    if not rows:
        return L + ([] if power else [f"No drift results ({sec.get('status')}).", ""])
    L += ["End to end, 20 features, drift planted in 5:", "",
          "| tool | rows | features | seconds | drift computation alone (s) | peak memory (MB) | "
          "planted features found / planted, + false alarms | status |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        inner = r.get("keizoku_elapsed_s", r.get("seconds") if "load_s" in r else None)
        L.append(f"| {r.get('tool')} | {r.get('rows')} | {r.get('features')} | "
                 f"{fmt(r.get('seconds'), 1)} | {fmt(inner, 1)} | {fmt(r.get('peak_rss_mb'), 0)} | "
                 f"{r.get('drifted_found', '–')} | "
                 f"{status_cell(r)} |")
    return L + [""]


def render_drift_power(sec: dict[str, Any], power: dict[str, Any]) -> list[str]:
    """Detection rate per planted kind and size (keizoku vs Evidently), false alarms per
    feature on the null cases, time per case and peak memory."""
    cfg = sec.get("power_config", {})
    kinds = sec.get("power_kinds", {})
    tools = list(dict.fromkeys(d["tool"] for d in power["detection"]))
    sizes = sorted({d["rows"] for d in power["detection"]})
    L = [f"Power: {', '.join(f'{n:,}' for n in sizes)} rows per side; generated trials per "
         f"kind {cfg.get('trials')} (null cases: {cfg.get('null_factor')}x as many); each cell "
         "counts the cases every tool ran (n/trials); status "
         f"{sec.get('power_status')}.", "",
         "Detection rate (planted feature flagged / trials):", "",
         "| planted change | " + " | ".join(f"{t} {n:,}" for n in sizes for t in tools) + " |",
         "|---|" + "---|" * (len(sizes) * len(tools))]
    det = {(d["tool"], d["rows"], d["kind"]): d for d in power["detection"]}

    def cells(table: dict[Any, Any], key: str, hit: str, pct: str) -> str:
        out = []
        for n in sizes:
            for t in tools:
                d = table.get((t, n, key))
                out.append("–" if d is None or not d["trials"]
                           else f"{d[hit] / d['trials']:{pct}} ({d[hit]}/{d['trials']})")
        return " | ".join(out)

    for kind, what in kinds.items():
        if kind != "null":
            L.append(f"| {kind}: {what} | {cells(det, kind, 'detected', '.0%')} |")
    L += ["", "False alarms on the null cases (features flagged / cases):", "",
          "| feature | " + " | ".join(f"{t} {n:,}" for n in sizes for t in tools) + " |",
          "|---|" + "---|" * (len(sizes) * len(tools))]
    fa = {(d["tool"], d["rows"], d["feature"]): d for d in power["false_alarms"]}
    feats = list(dict.fromkeys(d["feature"] for d in power["false_alarms"]))
    for f in feats:
        L.append(f"| {f} | {cells(fa, f, 'alarms', '.1%')} |")
    L += ["", "Time per case (median, seconds; keizoku: per-feature drift / with the domain "
          "classifier) and peak memory of the tool's process:", "",
          "| tool | rows | cases | seconds per case | peak memory (MB) |", "|---|---|---|---|---|"]
    for d in power["time"]:
        secs = (f"{fmt(d.get('features_median_s'), 2)} / {fmt(d.get('median_s'), 2)}"
                if d["tool"] == "keizoku" else fmt(d.get("median_s"), 2))
        L.append(f"| {d['tool']} | {d['rows']:,} | {d['cases']} | {secs} | "
                 f"{fmt(d.get('peak_rss_mb'), 0)} |")
    return L + [""]


def render(runs: list[dict[str, Any]], out: Path, archive: Path | None = None) -> None:
    """``out``: one current summary per area (the latest run that has it), then those runs
    in full; ``archive``: every other run, in full."""
    current = current_runs(runs)
    chosen = {id(r) for r in current.values()}
    latest = [r for r in runs if id(r) in chosen]
    L = ["# Benchmarks", "",
         "Side-by-side runs of keizoku against its peers, produced by `make bench` / "
         "`make bench-quick` (`bench/run.py`; the harness is described in `bench/README.md`). "
         "Every number below was measured by the run named above it; the raw JSON is in "
         "`bench/results/`. Nothing here is hand-edited.", "",
         "**Normalised score** = mean over data sets of (err_base − err_tool) / "
         "max(err_base, err_tool), with err = 1 − ROC AUC (binary; macro one-vs-rest over the "
         "classes present in the test split for multiclass) or RMSE (regression), base = "
         "LightGBM with default parameters. It lies in [−1, 1]: 0 = the baseline's error, +0.2 = "
         "20 % less error than the baseline, −0.2 = the baseline has 20 % less error than the "
         "tool. Dividing by the worse of the two (not by err_base alone) keeps a data set where "
         "the baseline is already near-perfect (AUC 0.99998) from dominating the mean. "
         "**Mean rank**: per data set, tools are ranked by that error (ties share the mean rank; "
         "a tool that failed or timed out ranks last); then averaged. **Wins**: data sets where "
         "the tool has the lowest error (a tie counts for each tied tool).", ""]
    L += ["## Current summary", "",
          "One summary per area, from the latest run that measured it (earlier runs: "
          "[benchmarks-archive.md](benchmarks-archive.md)).", ""]
    for area, title in AREAS.items():
        run = current.get(area)
        L += [f"### {title}", ""]
        if run is None:
            L += ["Not measured yet.", ""]
            continue
        sec = run["sections"][area]
        L += [run_context(run, sec), ""] + area_headline(area, sec)
    L += full_runs(latest)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L).rstrip() + "\n")
    print(f"[run] rendered {out}")
    older = [r for r in runs if id(r) not in chosen]
    if archive is not None and older:
        head = ["# Benchmarks: earlier runs", "",
                "Runs superseded by a later one in [benchmarks.md](benchmarks.md), kept as "
                "measured (definitions: see that page).", ""]
        archive.write_text("\n".join(head + full_runs(older)).rstrip() + "\n")
        print(f"[run] rendered {archive}")


def full_runs(runs: list[dict[str, Any]]) -> list[str]:
    L: list[str] = []
    for run in runs:
        m = run.get("machine", {})
        L += [f"## Run {run.get('stamp')} ({run.get('mode')})", "",
              f"- Date: {run.get('date')}"
              + (f"; keizoku at commit {run['git_commit']}" if run.get("git_commit") else ""),
              f"- Machine: {m.get('nproc')} CPU cores ({m.get('cpu')}), {m.get('memory_gib')} GiB "
              f"memory, {m.get('os')}, Python {m.get('python')}; other jobs may have shared the "
              "cores (timings are indicative, quality numbers are not affected by load except "
              "through the time budget).",
              "- Commands:", ""]
        L += ["```"] + run.get("commands", []) + ["```", ""]
        if run.get("notes"):
            L += [run["notes"], ""]
        secs = run.get("sections", {})
        if "automl" in secs:
            L += ["### AutoML quality at equal budget", ""] + render_automl(secs["automl"])
        if "serving" in secs:
            L += ["### Serving", ""] + render_serving(secs["serving"])
        if "drift" in secs:
            L += ["### Drift detection", ""] + render_drift(secs["drift"])
        if "rag" in secs:
            r = secs["rag"]
            L += ["### RAG retrieval", ""]
            L += [r.get("table") or f"No RAG results ({r.get('status')}: {r.get('note', '')}).", ""]
    return L


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--datasets", default=f"{BENCH / 'datasets.shared.yaml'},"
                                         f"{BENCH / 'datasets.pmlb.yaml'}",
                   help="AutoML data-set description files, comma list (default: the shared "
                        "tabular sets and the 47-set PMLB pack)")
    p.add_argument("--budgets", default="", help="AutoML budgets in s (default 60,300; quick 20)")
    p.add_argument("--tools", default="", help="AutoML tools (comma list)")
    p.add_argument("--only", default="", help="AutoML data sets (comma list)")
    p.add_argument("--notes", default="", help="a paragraph shown under the run's heading")
    p.add_argument("--docs", action="store_true", help="render docs/benchmarks.md even in quick mode")
    p.add_argument("--adopt", action="append", default=[], metavar="SECTION=FILE",
                   help="use an existing section JSON instead of running it (repeatable)")
    p.add_argument("--render", nargs="+", type=Path, help="only render these run JSON files")
    p.add_argument("--doc-out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.render:
        runs = [json.loads(f.read_text()) for f in args.render]
        render(runs, args.doc_out or DOCS, None if args.doc_out else ARCHIVE)
        return 0
    stamp = time.strftime("%Y%m%dT%H%M%S") + ("-quick" if args.quick else "")
    run = run_sections(args, stamp)
    if args.notes:
        run["notes"] = args.notes
    run["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    write_json(RESULTS / f"{stamp}.json", run)
    print(f"[run] wrote {RESULTS / f'{stamp}.json'}")
    if args.doc_out or (args.quick and not args.docs):
        render([run], args.doc_out or WORK / "benchmarks-quick.md")
    else:  # the docs: this run with every recorded one (the latest per area is current)
        runs = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))]
        render(runs, DOCS, ARCHIVE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
