"""Ray: trials per minute locally vs on a local 2-process Ray cluster, and the overhead.

    python bench/ray_bench.py --out bench/work/ray.json [--trials 8] [--rows 2000]

One search, ``max_trials`` bounded (deterministic), run twice on the same data: in this
process (the local executor) and with ``train.ray`` on a cluster of two processes on this
machine (a head and a worker node, one CPU each; started and torn down by
``tests/ray_support.local_cluster``). Data: scikit-learn's ``make_classification`` (binary,
20 features, seed 0), LightGBM and linear, 5 folds. Reported: the search phase's seconds,
trials per minute, the per-trial overhead of the cluster ((cluster - local) / trials), and
whether the two leaderboards are equal (they must be). Then ``predict``'s scoring of a
Parquet file of ``--score-rows`` rows: in batches here vs with Ray Data on the cluster.
On 2 shared cores the cluster cannot be faster: it measures what shipping costs.

    python bench/ray_bench.py --only rss --rss-rows 200000,1000000 [--before SRC]

The driver's memory with ``keizoku predict --ray`` (the real executable, its peak RSS from
``wait4``) on Parquet files of several sizes, scored in blocks of 10,000 rows and streamed
to the output; ``--before SRC`` (another checkout's ``src``, e.g. one that gathered every
block on the driver) runs the same commands with that code for comparison, and the local
``predict`` (which reads the whole file) is measured as a reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the cluster helper the tests use

SAME = ["trial", "model", "score", "std", "status", "chosen", "params"]


def _data(rows: int) -> Any:
    from sklearn.datasets import make_classification

    from keizoku.data.schema import infer_schema
    from keizoku.training.context import TrainingData

    X, y = make_classification(rows, 20, n_informative=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)]).assign(target=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return frame, TrainingData.build(frame, infer_schema(frame, "target"))


def _search(
    data: Any, trials: int, ray: str | None, models: tuple[str, ...] = ("lightgbm", "linear")
) -> tuple[float, Any]:
    from keizoku.training.config import TrainSpec
    from keizoku.training.search import run_search

    settings = {"budget": "3600s", "max_trials": trials, "models": list(models),
                "folds": 5, "ray": ray}  # fmt: skip
    res = run_search(data, TrainSpec.model_validate(settings))
    return res.phases["search"], res


def _score(model: Any, path: Path, ray: str | None) -> tuple[float, pd.DataFrame]:
    from keizoku.data.validate import validate_frame
    from keizoku.distributed.ray_predict import score_parquet

    t0 = time.perf_counter()
    if ray:
        score_parquet(ray, model, str(path), str(path.with_name("ray.parquet")), 10_000, False)
        out = pd.read_parquet(path.with_name("ray.parquet"))
    else:
        frame = validate_frame(model.schema, pd.read_parquet(path))
        parts = [
            model.score_frame(frame.iloc[i : i + 10_000]) for i in range(0, len(frame), 10_000)
        ]
        out = pd.concat(parts).reset_index(drop=True)
    return time.perf_counter() - t0, out


def _peak_rss_mb(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Peak memory of ``cmd`` run to its end: the RSS (``wait4``), and its private and
    shared parts sampled from /proc every 0.1 s (shared: Ray's object store pages that the
    driver maps when it reads a block)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    peak = {"RssAnon": 0, "RssShmem": 0}
    status = Path(f"/proc/{proc.pid}/status")
    while True:
        try:
            for line in status.read_text().splitlines():
                key, _, value = line.partition(":")
                if key in peak:
                    peak[key] = max(peak[key], int(value.split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        done, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(code)
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024),
            "peak_private_mb": round(peak["RssAnon"] / 1024),
            "peak_shared_mb": round(peak["RssShmem"] / 1024),
            "seconds": round(time.perf_counter() - t0, 1), "exit": proc.returncode}  # fmt: skip


def rss(sizes: list[int], before: str | None) -> dict[str, Any]:
    """The driver's peak RSS for ``predict --ray`` on files of ``sizes`` rows."""
    from kzsupport import KEIZOKU_EXE
    from ray_support import local_cluster

    frame, _ = _data(2000)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kzbench-rss-") as tmp:
        where = Path(tmp)
        env = {**os.environ, "KEIZOKU_HOME": str(where / ".keizoku")}
        env.pop("KEIZOKU_STORE", None)
        frame.to_csv(where / "train.csv", index=False)
        for args in (
            ["init", "train.csv", "--target", "target"],
            ["train", "--max-trials", "1", "--family", "linear", "--budget", "300s"],
        ):
            subprocess.run([KEIZOKU_EXE, *args], cwd=where, env=env, check=True,
                           capture_output=True)  # fmt: skip
        features = frame.drop(columns=["target"])
        with local_cluster(workers=1) as cluster:
            for n in sizes:
                big = pd.concat([features] * (n // len(features) + 1)).head(n)
                big.to_parquet(where / "in.parquet", index=False, row_group_size=50_000)
                mb = (where / "in.parquet").stat().st_size / 1e6
                predict = [KEIZOKU_EXE, "predict", "in.parquet", "--model", "train@champion",
                           "--batch-size", "10000", "-o", "out.parquet"]  # fmt: skip
                modes = [
                    ("local", predict, env),
                    ("ray", [*predict, "--ray", cluster.address], env),
                ]
                if before:
                    old = {**env, "PYTHONPATH": before}
                    modes.append(("ray, before", [*predict, "--ray", cluster.address], old))
                for mode, cmd, run_env in modes:
                    memory = _peak_rss_mb(cmd, where, run_env)
                    runs.append({"rows": n, "file_mb": round(mb, 1), "mode": mode, **memory,
                                 "load_average": os.getloadavg()})  # fmt: skip
                    print(json.dumps(runs[-1]), flush=True)
    return {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "batch_size": 10_000, "runs": runs}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/work/ray.json")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--score-rows", type=int, default=200_000)
    ap.add_argument("--only", choices=["all", "rss"], default="all")
    ap.add_argument("--rss-rows", default="200000,1000000")
    ap.add_argument("--before", help="another src folder to run predict --ray from (rss)")
    args = ap.parse_args()
    if args.only == "rss":
        result = rss([int(n) for n in args.rss_rows.split(",")], args.before)
        out = Path(args.out).with_name("ray-rss.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        return
    from ray_support import local_cluster

    frame, data = _data(args.rows)
    _, tiny = _data(200)
    local_s, local = _search(data, args.trials, None)
    # The overhead probe: linear models on 200 rows fit in milliseconds, so what a trial
    # costs on the cluster beyond the local one is Ray's (scheduling, shipping), not CPU.
    probe_local_s, probe = _search(tiny, args.trials, None, ("linear",))
    with tempfile.TemporaryDirectory(prefix="kzbench-ray-") as tmp:
        big = pd.concat([frame.drop(columns=["target"])] * (args.score_rows // len(frame) + 1))
        path = Path(tmp) / "score.parquet"
        big.head(args.score_rows).to_parquet(path, index=False, row_group_size=25_000)
        score_local_s, scored_local = _score(local.model, path, None)
        with local_cluster(workers=1) as cluster:
            ray_s, remote = _search(data, args.trials, cluster.address)
            probe_ray_s, _ = _search(tiny, args.trials, cluster.address, ("linear",))
            score_ray_s, scored_ray = _score(local.model, path, cluster.address)
    n = len(local.trials)
    result = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "trials": n,
        "local_search_s": round(local_s, 2),
        "ray_search_s": round(ray_s, 2),
        "local_trials_per_min": round(60 * n / local_s, 1),
        "ray_trials_per_min": round(60 * n / ray_s, 1),
        "finished": sum(t.status == "ok" for t in local.trials),
        "overhead_per_trial_s": round((ray_s - local_s) / n, 2),
        "probe_trials": len(probe.trials),
        "probe_local_s": round(probe_local_s, 2),
        "probe_ray_s": round(probe_ray_s, 2),
        "probe_overhead_per_trial_s": round((probe_ray_s - probe_local_s) / len(probe.trials), 3),
        "same_leaderboard": bool(local.leaderboard[SAME].equals(remote.leaderboard[SAME])),
        "score_rows": args.score_rows,
        "score_local_s": round(score_local_s, 2),
        "score_ray_s": round(score_ray_s, 2),
        "same_predictions": bool(scored_local.equals(scored_ray)),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
