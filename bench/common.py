"""Shared helpers of the benchmark harness: data set descriptions, fixed splits, metrics,
peer environments and bounded subprocesses.

The harness itself runs in the project's own environment (``.venv``); every tool runs in its
own virtual environment under ``bench/`` through a small runner script in ``bench/runners/``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"  # git-ignored scratch (splits, tool outputs, temp homes)
RESULTS = BENCH / "results"

TASKS = ("binary", "multiclass", "regression")


# --------------------------------------------------------------------------- environments

# tool -> virtual environment that runs it (first one that exists wins)
TOOL_VENVS: dict[str, list[Path]] = {
    "keizoku": [ROOT / ".venv"],
    "keizoku_mlp": [ROOT / ".venv"],
    "lightgbm": [BENCH / ".venv-lightgbm", ROOT / ".venv"],
    "flaml": [BENCH / ".venv-flaml"],
    "autogluon": [BENCH / ".venv-autogluon"],
    "autogluon_best": [BENCH / ".venv-autogluon"],
    "evidently": [BENCH / ".venv-evidently"],
    "mlflow": [BENCH / ".venv-mlflow"],
    "bentoml": [BENCH / ".venv-bentoml"],
}

# tool -> distributions whose versions the report shows
TOOL_PACKAGES: dict[str, list[str]] = {
    "keizoku": ["keizoku", "lightgbm", "xgboost-cpu", "scikit-learn", "optuna", "mlflow"],
    "keizoku_mlp": ["keizoku", "torch", "lightgbm", "xgboost-cpu", "scikit-learn", "optuna"],
    "lightgbm": ["lightgbm", "scikit-learn", "pandas"],
    "flaml": ["flaml", "lightgbm", "xgboost-cpu", "scikit-learn"],
    "autogluon": ["autogluon.tabular", "lightgbm", "catboost", "xgboost-cpu"],
    "autogluon_best": ["autogluon.tabular", "lightgbm", "catboost", "xgboost-cpu"],
    "evidently": ["evidently", "pandas"],
    "mlflow": ["mlflow", "keizoku"],
    "bentoml": ["bentoml"],
}


def tool_python(tool: str) -> Path | None:
    """The python of the environment that runs ``tool``, or None when none is installed."""
    for venv in TOOL_VENVS.get(tool, []):
        py = venv / "bin" / "python"
        if py.exists():
            return py
    return None


def package_versions(tool: str, timeout: float = 60) -> dict[str, str]:
    """Versions of the packages that matter for ``tool``, read inside its own environment."""
    py = tool_python(tool)
    if py is None:
        return {}
    code = (
        "import json, importlib.metadata as m\n"
        f"names = {TOOL_PACKAGES.get(tool, [])!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "import sys; out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    try:
        res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=timeout)
        return json.loads(res.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001 - a broken peer is reported, never fatal
        return {}


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


# --------------------------------------------------------------------------- bounded subprocess


@dataclass
class ProcResult:
    returncode: int | None
    seconds: float
    timed_out: bool
    max_rss_mb: float
    stdout_tail: str = ""
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_bounded(
    cmd: list[str],
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> ProcResult:
    """Run ``cmd`` in its own process group; kill the whole group after ``timeout`` seconds.

    Output goes to ``log`` (when given); the last lines are kept in the result. ``max_rss_mb``
    is the peak resident memory of the largest child waited for so far (Linux ``ru_maxrss``),
    so it is exact only when the runs are sequential and the newest is the largest; drift.py
    measures memory inside the child instead.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log_path = log or (WORK / "logs" / f"proc-{os.getpid()}-{time.time_ns()}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    tail = log_path.read_text(errors="replace").splitlines()[-25:]
    return ProcResult(proc.returncode, seconds, timed_out, rss, "\n".join(tail))


# --------------------------------------------------------------------------- data sets


@dataclass
class DatasetSpec:
    name: str
    file: Path
    target: str
    task: str
    sep: str | None = None
    no_header: bool = False
    na_values: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    quick: bool = False

    def read(self) -> pd.DataFrame:
        sep = self.sep
        if sep is None:
            sep = "\t" if ".tsv" in self.file.name else ","
        kwargs: dict[str, Any] = {"sep": sep}
        if self.no_header:
            kwargs["header"] = None
        if self.na_values:
            kwargs["na_values"] = self.na_values
        df = pd.read_csv(self.file, **kwargs)
        if self.no_header:
            df.columns = [f"col{i}" for i in range(df.shape[1])]
        if self.drop:
            df = df.drop(columns=[c for c in self.drop if c in df.columns])
        if self.target not in df.columns:
            raise ValueError(
                f"data set {self.name!r}: target column {self.target!r} not found in {self.file}; "
                f"columns are {list(df.columns)[:12]}... (set `target:` or `no_header: true`)"
            )
        return df


def load_datasets(path: Path) -> list[DatasetSpec]:
    """Read a data-set description file (see bench/datasets.shared.yaml for the keys)."""
    doc = yaml.safe_load(Path(path).read_text())
    base = Path(path).resolve().parent
    root = base / doc.get("root", ".")
    out = []
    for name, d in (doc.get("datasets") or {}).items():
        task = d.get("task")
        if task not in TASKS:
            raise ValueError(f"data set {name!r}: task {task!r} is not one of {TASKS}")
        f = Path(d["file"])
        out.append(
            DatasetSpec(
                name=name,
                file=f if f.is_absolute() else (root / f).resolve(),
                target=str(d["target"]),
                task=task,
                sep=d.get("sep"),
                no_header=bool(d.get("no_header", False)),
                na_values=[str(v) for v in d.get("na_values", [])],
                drop=[str(c) for c in d.get("drop", [])],
                quick=bool(d.get("quick", False)),
            )
        )
    return out


def make_split(spec: DatasetSpec, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Write train.parquet / test.parquet / task.json once (80/20, stratified for classification).

    An existing split is reused untouched, so every tool sees identical rows.
    """
    from sklearn.model_selection import train_test_split

    task_file = out_dir / "task.json"
    if task_file.exists() and (out_dir / "train.parquet").exists():
        return json.loads(task_file.read_text())
    df = spec.read()
    df = df[df[spec.target].notna()].reset_index(drop=True)
    # column names must be strings for parquet and for every tool
    df.columns = [str(c) for c in df.columns]
    strat = df[spec.target] if spec.task != "regression" else None
    train, test = train_test_split(df, test_size=0.2, random_state=seed, stratify=strat)
    out_dir.mkdir(parents=True, exist_ok=True)
    train.reset_index(drop=True).to_parquet(out_dir / "train.parquet", index=False)
    test.reset_index(drop=True).to_parquet(out_dir / "test.parquet", index=False)
    classes: list[str] = []
    if spec.task != "regression":
        classes = sorted({str(v) for v in train[spec.target].unique()})
    task = {
        "name": spec.name,
        "source": str(spec.file),
        "target": spec.target,
        "task": spec.task,
        "classes": classes,  # as strings, sorted; proba_<class> columns use these names
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "n_features": int(df.shape[1] - 1),
        "seed": seed,
    }
    task_file.write_text(json.dumps(task, indent=2))
    return task


# --------------------------------------------------------------------------- metrics


def proba_matrix(preds: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The ``proba_<class>`` columns in ``classes`` order, rows renormalised to sum to 1."""
    cols = {str(c)[len("proba_") :]: c for c in preds.columns if str(c).startswith("proba_")}
    mat = np.zeros((len(preds), len(classes)))
    for j, cls in enumerate(classes):
        if cls in cols:
            mat[:, j] = pd.to_numeric(preds[cols[cls]], errors="coerce").fillna(0).to_numpy()
        elif cls.endswith(".0") and cls[:-2] in cols:  # int labels read back as floats
            mat[:, j] = pd.to_numeric(preds[cols[cls[:-2]]], errors="coerce").fillna(0).to_numpy()
    mat = np.clip(mat, 0, None)
    s = mat.sum(axis=1, keepdims=True)
    s[s == 0] = 1
    return mat / s


def score(task: dict[str, Any], y_true: pd.Series, preds: pd.DataFrame) -> dict[str, float]:
    """Metrics on the test rows. Classification: roc_auc (macro OvR for multiclass), log_loss,
    accuracy. Regression: rmse, mae, r2."""
    from sklearn import metrics as m

    if task["task"] == "regression":
        y = pd.to_numeric(y_true).to_numpy(dtype=float)
        p = pd.to_numeric(preds["prediction"]).to_numpy(dtype=float)
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y, p))),
            "mae": float(m.mean_absolute_error(y, p)),
            "r2": float(m.r2_score(y, p)),
        }
    classes = task["classes"]
    y = y_true.astype(str).to_numpy()
    proba = proba_matrix(preds, classes)
    out: dict[str, float] = {}
    if task["task"] == "binary":
        out["roc_auc"] = float(m.roc_auc_score(y == classes[1], proba[:, 1]))
    else:
        # macro one-vs-rest over the classes present in the test rows (a class too rare to
        # reach the 20 % split, e.g. hypothyroid's secondary_hypothyroid, has no AUC); equal to
        # sklearn's roc_auc_score(multi_class="ovr", average="macro") when all are present
        aucs = [
            m.roc_auc_score(y == c, proba[:, j])
            for j, c in enumerate(classes)
            if (y == c).any() and (y != c).any()
        ]
        out["roc_auc"] = float(np.mean(aucs))
    eps = 1e-15
    out["log_loss"] = float(m.log_loss(y, np.clip(proba, eps, 1 - eps), labels=classes))
    out["accuracy"] = float(np.mean(np.asarray(classes)[proba.argmax(axis=1)] == y))
    return out


def primary_error(task_kind: str, metrics: dict[str, float]) -> float | None:
    """Error used for ranks and the normalised score: 1 - ROC AUC, or RMSE."""
    if task_kind == "regression":
        return metrics.get("rmse")
    auc = metrics.get("roc_auc")
    return None if auc is None else 1.0 - auc


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
