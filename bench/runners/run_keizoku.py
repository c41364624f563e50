"""keizoku, driven through its CLI exactly as a user would, in a temp working dir with its own
KEIZOKU_HOME:

    keizoku init train.parquet --target T --task K
    keizoku train --budget 60s --json   (the summary: wall_s, phases)
    keizoku predict --model train test.parquet -o preds.parquet

Single-row latency goes through the library, as an application embedding keizoku would:
``keizoku.registry.load_model("train@champion").predict_records([record])``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _runner import dir_size, main, single_row_latency, versions

PROJECT = "train"  # keizoku names the project after the data file's stem


def keizoku_cmd(*args: str, cwd: Path, env: dict, log: Path, stdout: Path | None = None) -> float:
    """Run ``keizoku ARGS``; its output goes to ``log`` (stdout to ``stdout`` when given)."""
    exe = Path(sys.executable).with_name("keizoku")
    cmd = [str(exe) if exe.exists() else "keizoku", *args]
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        out = open(stdout, "w") if stdout else fh  # noqa: SIM115 - closed below
        try:
            res = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=fh)
        finally:
            if stdout:
                out.close()
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"`keizoku {' '.join(args)}` exited {res.returncode}: " + "\n".join(tail))
    return seconds


def model_bytes(home: Path) -> tuple[int, str]:
    """Size of the champion's artifacts; falls back to the home folder without the DB."""
    try:
        from keizoku.registry import version_artifact

        p = version_artifact(f"{PROJECT}@champion", "keizoku_model.pkl")
        return dir_size(p), "champion's keizoku_model.pkl"
    except Exception:  # noqa: BLE001 - fall back to an upper bound
        pass
    total = sum(
        p.stat().st_size for p in home.rglob("*")
        if p.is_file() and not p.name.endswith((".db", ".db-journal", ".db-wal", ".log"))
    )
    return total, "KEIZOKU_HOME without the DB (upper bound)"


def added_families(extra: str, n_rows: int) -> list[str]:
    """``--family`` flags for the default preset's families that suit ``n_rows`` (the rule
    keizoku applies itself) plus ``extra``; none (keizoku's own default) without ``extra``."""
    if not extra:
        return []
    from keizoku.training.presets import DEFAULT_PRESET, PRESETS
    from keizoku.training.zoo import families_for

    among = PRESETS[DEFAULT_PRESET]["families"]
    names = [f.name for f in families_for(None, n_rows) if f.name in among] + [extra]
    return [arg for name in names for arg in ("--family", name)]


def family_best(trained: dict) -> dict[str, float]:
    """The best cross-validated score of each family on the train leaderboard."""
    sign = 1 if trained.get("greater_is_better") else -1
    best: dict[str, float] = {}
    for row in trained.get("leaderboard") or []:
        fam, val = row.get("model"), row.get("score")
        if fam is None or not isinstance(val, (int, float)) or val != val:  # NaN: failed
            continue
        if fam not in best or sign * val > sign * best[fam]:
            best[fam] = val
    return best


def scores(model, record: dict) -> bool:
    """Whether the library scores ``record`` as it is (False: it refuses the record)."""
    try:
        model.predict_records([record])
    except Exception:  # noqa: BLE001 - a refused record is left out of the latency sample
        return False
    return True


def run(args, task, train, test):
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    home = work / ".keizoku"
    env = dict(os.environ, KEIZOKU_HOME=str(home))
    log = args.out / "keizoku.log"
    target = task["target"]
    train.to_parquet(work / "train.parquet", index=False)
    test.drop(columns=[target]).to_parquet(work / "test.parquet", index=False)

    init_s = keizoku_cmd("init", "train.parquet", "--target", target, "--task", task["task"],
                         cwd=work, env=env, log=log)
    summary = args.out / "train.json"
    families = added_families(args.add_family, len(train))
    fit_s = keizoku_cmd("train", "--budget", f"{int(args.budget)}s", "--json", *families,
                        cwd=work, env=env, log=log, stdout=summary)
    trained = json.loads(summary.read_text())
    # --allow-unseen: a test row may hold a category the training split never had (coil2000's
    # integer codes); keizoku refuses such rows by default and scores them with this flag
    predict_s = keizoku_cmd("predict", "--model", PROJECT, "test.parquet", "-o", "preds.parquet",
                            "--allow-unseen",
                            cwd=work, env=env, log=log)
    preds = pd.read_parquet(work / "preds.parquet")
    keep = ["prediction"] + [c for c in preds.columns if str(c).startswith("proba_")]
    preds[keep].to_parquet(args.out / "preds.parquet", index=False)

    # single-row latency through the library, in this process
    os.environ["KEIZOKU_HOME"] = str(home)
    os.chdir(work)
    from keizoku.registry import load_model

    t0 = time.perf_counter()
    model = load_model(f"{PROJECT}@champion")
    load_s = time.perf_counter() - t0
    records = json.loads(test.drop(columns=[target]).head(200).to_json(orient="records"))
    records = [r for r in records if scores(model, r)]  # the API refuses unseen categories
    res = {"fit_s": fit_s, "init_s": init_s, "predict_s": predict_s, "load_s": load_s,
           # the command's own account: wall from process start, and where the time went
           "train_wall_s": trained.get("wall_s"), "train_phases": trained.get("phases"),
           "search_phases": trained.get("search_phases"), "n_trials": trained.get("trials"),
           "members": (trained.get("best") or {}).get("members"),
           "family_best": family_best(trained), "families_flag": families}
    res.update(single_row_latency(lambda r: model.predict_records([r]), records))
    res["model_bytes"], size_note = model_bytes(home)  # after load_model: KEIZOKU_HOME is set
    res["versions"] = versions("keizoku", "lightgbm", "xgboost-cpu", "scikit-learn", "optuna")
    res["notes"] = (f"fit_s = wall time of `keizoku train` (CLI start included), measured "
                    f"outside the process; train_wall_s = the command's own clock; "
                    f"predict_s = `keizoku predict` on the test file; size: {size_note}")
    return res


if __name__ == "__main__":
    main(run)
