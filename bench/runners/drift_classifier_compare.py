"""The domain classifier now (quadratic, numpy) against the one before s10 (scikit-learn's
histogram gradient boosting, read from git at commit 2aa07f5), on bench/drift.py's eight
power features: null cases and a planted correlation between pa and pb, 12 seeded cases
per row (seeds ``[77, rows, trial, 10 r]``, apart from the power benchmark's).

    python bench/runners/drift_classifier_compare.py OUT.json

Prints one line per (window, planted, classifier): flagged / cases, median AUC, median CPU
seconds of the call (the import of scikit-learn not counted).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "2aa07f5"
KINDS = {"n_norm": "numeric", "n_logn": "numeric", "n_unif": "numeric", "n_miss": "numeric",
         "c5": "categorical", "c3": "categorical", "pa": "numeric", "pb": "numeric"}  # fmt: skip
ROWS = [(5000, 0.0), (5000, 0.3), (5000, 0.4), (1000, 0.0), (1000, 0.5), (1000, 0.7)]
TRIALS = 12


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _before(folder: Path) -> ModuleType:
    text = subprocess.run(["git", "show", f"{BEFORE}:src/keizoku/monitoring/multivariate.py"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = folder / "multivariate_before.py"
    path.write_text(text)
    return _module(path, "multivariate_before")


def frame(n: int, rng: np.random.Generator, rho: float) -> pd.DataFrame:
    pa = rng.normal(0, 1, n)
    n_miss = rng.normal(0, 1, n)
    n_miss[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "n_norm": rng.normal(0, 1, n), "n_logn": rng.lognormal(0, 0.5, n),
        "n_unif": rng.uniform(-2, 2, n), "n_miss": n_miss, "c5": rng.choice(list("abcde"), n),
        "c3": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]), "pa": pa,
        "pb": rho * pa + np.sqrt(1 - rho**2) * rng.normal(0, 1, n),
    })  # fmt: skip


def main(out: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from keizoku.monitoring import multivariate as now

    result: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = _before(Path(tmp))
        for n, rho in ROWS:
            for name, module in (("quadratic (now)", now), ("gradient boosting (before)", before)):
                flagged, cpu, aucs = 0, [], []
                for trial in range(TRIALS):
                    rng = np.random.default_rng([77, n, trial, int(rho * 10)])
                    ref, cur = frame(n, rng, 0.0), frame(n, rng, rho)
                    start = time.process_time()
                    verdict = module.domain_classifier(ref, cur, KINDS)
                    cpu.append(time.process_time() - start)
                    flagged += verdict.drifted
                    aucs.append(verdict.auc)
                key = f"{n} rows a side, r {rho}"
                result.setdefault(key, {})[name] = {
                    "flagged": flagged, "cases": TRIALS, "auc_median": float(np.median(aucs)),
                    "cpu_s_median": float(np.median(cpu)),
                }  # fmt: skip
                print(f"{key:28} {name:27} {flagged}/{TRIALS} AUC {np.median(aucs):.3f} "
                      f"cpu {np.median(cpu):.3f} s", flush=True)  # fmt: skip
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
