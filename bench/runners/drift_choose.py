"""Choose the numeric drift rule on seeds the benchmark does not use (issue 14).

    python bench/runners/drift_choose.py [--trials 200] [--out bench/work/drift_choose.json]

Per window size n (reference and current both n rows) and per planted change, draws
``--trials`` seeded cases (seeds ``[n, trial, 9000 + k]``; the benchmark's are
``[n, trial, k]`` with k < 10, so these cases are disjoint from the bench's) of three
numeric shapes (normal, log-normal, uniform; 5 % nulls in the normal one) and records,
from the same sketch ``keizoku monitor`` uses (``numeric_ref`` on the reference,
``numeric_counts`` on the current): the Wasserstein/std distance, the binned KS p-value
and the chi-squared p-value on the reference's quantile bins. Prints, per n and change,
quantiles of the distance and the share of trials each candidate rule flags.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from keizoku.monitoring.drift import (
    DriftConfig,
    compare_numeric,
    numeric_counts,
)
from keizoku.monitoring.reference import numeric_ref

SIZES = [1000, 2000, 5000, 10000, 30000, 100000]
CHANGES = ["null", "mean 0.05", "mean 0.1", "variance x1.25"]
SHAPES = ["normal", "lognormal", "uniform"]


def draw(shape: str, n: int, rng: np.random.Generator, change: str) -> np.ndarray:
    shift = float(change.split()[1]) if change.startswith("mean") else 0.0
    scale = 1.25 if change.startswith("variance") else 1.0
    if shape == "normal":
        x = rng.normal(0, 1, n)
        x[rng.random(n) < 0.05] = np.nan
        sd, mu = 1.0, 0.0
    elif shape == "lognormal":
        x = rng.lognormal(0, 0.5, n)
        mu = math.exp(0.125)
        sd = math.sqrt((math.exp(0.25) - 1) * math.exp(0.25))
    else:
        x = rng.uniform(-2, 2, n)
        sd, mu = 4 / math.sqrt(12), 0.0
    return mu + (x - mu) * scale + shift * sd


def chi2_bins(ref_probs: np.ndarray, n_ref: int, cur_bins: np.ndarray) -> float:
    table = np.vstack([ref_probs * n_ref, cur_bins])
    table = table[:, table.sum(axis=0) > 0]
    _, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(p)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--out", type=Path, default=Path("bench/work/drift_choose.json"))
    a = p.parse_args()
    cfg = DriftConfig()
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        trials = a.trials if n <= 10000 else max(a.trials // 4, 20)
        for k, change in enumerate(CHANGES):
            for shape in SHAPES:
                if change != "null" and shape != "normal":
                    continue
                for t in range(trials):
                    rng = np.random.default_rng([n, t, 9000 + k, SHAPES.index(shape)])
                    ref = numeric_ref(draw(shape, n, rng, "null"))
                    cur = numeric_counts(draw(shape, n, rng, change), ref)
                    fd = compare_numeric("x", ref, cur, cfg)
                    nonnull = cur.n - cur.nulls
                    le = np.concatenate([cur.le, [nonnull]])
                    cur_bins = np.diff(np.concatenate([[0.0], le]))
                    n_ref = int(ref.n * (1 - ref.null_rate))
                    rows.append({
                        "n": n, "change": change, "shape": shape, "trial": t,
                        "w": fd.distance, "p_ks": fd.p_value,
                        "p_chi2": chi2_bins(ref.bin_probs(), n_ref, cur_bins),
                        "drifted": fd.drifted, "threshold": fd.threshold,
                    })
        print(f"n={n} done", file=sys.stderr, flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
