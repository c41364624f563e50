"""Edge export benchmark: per shared tabular set, train, export to ONNX, and measure.

For each set: a keizoku model (search budget ``--budget``, optionally one ``--family``) is
registered in a temporary home and exported (``keizoku.export.export_onnx``) with the
test split as the parity sample. Measured: parity (max |Δ|), single-record latency
(median µs; JSON record in, answer out, the same record again and again and a new one
each call; the graph's ``session.run`` alone; its node and tree counts) of the bundle
runner vs keizoku's in-process ``predict_raw_records`` vs the native estimator on one
encoded numpy row, bundle and model file sizes, and the runner's cold start (a fresh
process: import, verify, load, first answer) and peak memory (max RSS).

    python bench/export.py [--sets titanic,blood,...] [--budget 60] [--family lightgbm]
                           [--work DIR]
    python bench/export.py --remeasure DIR   # time DIR's bundles again, no training
    python bench/export.py --reexport DIR    # export DIR's registered models again

Writes bench/results/export-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
VARIED = 64  # test records the varied latency cycles through
DEFAULT_SETS = "blood,titanic,credit_g,wa_churn,penguins,car,mpg,insurance,abalone"
# Peak RSS from VmHWM (this process's own address space): ru_maxrss survives exec on
# Linux and reported the benchmark parent's size (425-518 MiB) instead of the runner's.
COLD = (
    "import json, sys, time; t = time.perf_counter(); import runner; "
    "a = runner.predict(json.loads(sys.argv[1]), allow_unseen=True); "
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
    "print(json.dumps({'seconds': time.perf_counter() - t, 'rss_mib': int(hwm[0]) / 1024}))"
)


def median_us(fn: Any, repeat: int = 2000) -> float:
    for _ in range(50):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def latencies(bundle: Any, records: list[dict[str, Any]]) -> dict[str, float]:
    """Median µs of one record in, answer out: ``bundle_us`` the first record again and
    again (as s6/s7 measured it: the CPU's branch predictor learns that record's paths
    through the trees), ``varied_us`` a new record each call, cycling through ``records``
    (as a service sees them: on 1,000+ trees 2-3× the first); ``run_us`` and
    ``run_varied_us`` the graph alone (the session's run on prepared inputs) likewise."""
    first = records[0]
    feeds = [{k: v.copy() for k, v in bundle.feeds([r]).items()} for r in records]
    turn = itertools.cycle(records)
    feed_turn = itertools.cycle(feeds)
    return {
        "bundle_us": median_us(lambda: bundle.predict([first], allow_unseen=True)),
        "varied_us": median_us(lambda: bundle.predict([next(turn)], allow_unseen=True)),
        "run_us": median_us(lambda: bundle.run(feeds[0])),
        "run_varied_us": median_us(lambda: bundle.run(next(feed_turn))),
    }


def first_records(test: Any, names: list[str], n: int = VARIED) -> list[dict[str, Any]]:
    """The first ``n`` rows of a test split as JSON records."""
    return [{k: plain(v) for k, v in row.items()} for _, row in test[names].head(n).iterrows()]


def plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value


def one_set(spec: Any, budget: float, family: str | None, work: Path) -> dict[str, Any]:
    import numpy as np
    import onnx
    import pandas as pd
    from common import make_split

    from keizoku.data.schema import infer_schema
    from keizoku.errors import KeizokuError
    from keizoku.export import export_onnx
    from keizoku.export.runner import Bundle
    from keizoku.registry import load_model
    from keizoku.registry.models import MODEL_FILE, version_artifact
    from keizoku.registry.tracking import TrainingRun
    from keizoku.training.config import TrainSpec
    from keizoku.training.context import TrainingData
    from keizoku.training.model import raw_predict
    from keizoku.training.search import run_search

    split = work / "splits" / spec.name
    make_split(spec, split)
    train = pd.read_parquet(split / "train.parquet")
    test = pd.read_parquet(split / "test.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, spec.target)
        cfg = TrainSpec(budget=budget, models=[family] if family else None)
        result = run_search(TrainingData.build(train, schema), cfg)
    model = result.model
    schema_file = work / f"{spec.name}-schema.yaml"
    model.schema.save(schema_file)
    with TrainingRun(spec.name) as run:
        version = run.register(model, {"schema": schema_file}, {})
    ref = f"{spec.name}:{version}"
    row: dict[str, Any] = {"set": spec.name, "task": spec.task,
                           "members": sorted({m.family for m in model.members}),
                           "n_members": len(model.members)}  # fmt: skip
    folder = work / "bundles" / spec.name
    try:
        exported = export_onnx(ref, folder, test)
    except KeizokuError as exc:
        row["error"] = exc.message
        return row
    loaded = load_model(ref)
    features = loaded.feature_names
    records = first_records(test, features)
    record = records[0]
    bundle = Bundle(folder)
    row["parity_max_abs_diff"] = exported.parity.max_abs_diff
    row["parity_rows"] = exported.parity.rows
    row.update(latencies(bundle, records))
    graph = onnx.load(str(folder / "model.onnx")).graph
    row["nodes"] = len(graph.node)
    row["trees"] = sum(len(set(a.ints)) for n in graph.node for a in n.attribute
                       if a.name == "nodes_treeids")  # fmt: skip
    row["keizoku_us"] = median_us(lambda: loaded.predict_raw_records([record]))
    first = loaded.members[0]
    x = first.encoder.transform_records([record])
    row["native_us"] = median_us(lambda: raw_predict(first.estimator, x, loaded.task))
    row["native_family"] = first.family
    row["bundle_kib"] = exported.size_bytes / 1024
    row["model_kib"] = version_artifact(ref, MODEL_FILE).stat().st_size / 1024
    cold, rss = [], []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for _ in range(5):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", COLD, json.dumps(record)], cwd=folder,
                              env=env, capture_output=True, text=True, check=True)  # fmt: skip
        cold.append(time.perf_counter() - t)  # the whole process: interpreter start included
        rss.append(json.loads(done.stdout)["rss_mib"])
    row["cold_start_s"] = statistics.median(cold)
    row["peak_rss_mib"] = max(rss)
    assert np.isfinite(row["bundle_us"])
    return row


def remeasure(work: Path, repeat: int = 3) -> list[dict[str, Any]]:
    """Time the bundles an earlier run left in ``work`` again (runner, graph alone, cold
    start), without training: the first test row of each set's split (and its first
    ``VARIED`` rows in turn: ``latencies``), ``repeat`` rounds interleaved across sets, the
    median per set. For a quiet re-measure of the same graphs."""
    import pandas as pd

    from keizoku.export.runner import Bundle

    rows: dict[str, dict[str, Any]] = {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    folders = sorted(p for p in (work / "bundles").iterdir() if (p / "model.onnx").exists())
    samples: dict[str, dict[str, list[float]]] = {f.name: {} for f in folders}
    for _ in range(repeat):
        for folder in folders:
            fields = json.loads((folder / "schema.json").read_text())["fields"]
            test = pd.read_parquet(work / "splits" / folder.name / "test.parquet")
            records = first_records(test, list(fields))
            got = samples[folder.name]
            for key, value in latencies(Bundle(folder), records).items():
                got.setdefault(key, []).append(value)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", COLD, json.dumps(records[0])], cwd=folder,
                           env=env, capture_output=True, text=True, check=True)  # fmt: skip
            got.setdefault("cold_start_s", []).append(time.perf_counter() - t)
    for name, got in samples.items():
        rows[name] = {"set": name, **{k: statistics.median(v) for k, v in got.items()}}
        print(json.dumps(rows[name]), flush=True)
    return list(rows.values())


def reexport(work: Path) -> list[dict[str, Any]]:
    """Export the models an earlier run registered in ``work`` again with this checkout's
    graph code (into ``work/bundles``, each parity-checked on its set's test split), for a
    before/after of the graph on the same models."""
    import onnx
    import pandas as pd

    from keizoku.export import export_onnx

    os.environ["KEIZOKU_HOME"] = str(work / "home")
    rows = []
    for folder in sorted(p for p in (work / "bundles").iterdir() if (p / "model.onnx").exists()):
        ref = json.loads((folder / "manifest.json").read_text())["model"]
        test = pd.read_parquet(work / "splits" / folder.name / "test.parquet")
        exported = export_onnx(ref, folder, test)
        graph = onnx.load(str(folder / "model.onnx")).graph
        rows.append({"set": folder.name, "model": ref,
                     "parity_max_abs_diff": exported.parity.max_abs_diff,
                     "nodes": len(graph.node)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    from common import load_datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=DEFAULT_SETS)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--family", default=None)
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep the home, splits and bundles here (default: a new temporary "
        "folder), e.g. for a later --remeasure",
    )
    parser.add_argument(
        "--remeasure",
        type=Path,
        default=None,
        help="time the bundles an earlier run left in this work folder again",
    )
    parser.add_argument(
        "--reexport",
        type=Path,
        default=None,
        help="export the models an earlier run registered in this work folder "
        "again with this checkout (replaces its bundles)",
    )
    args = parser.parse_args()
    if args.reexport:
        reexport(args.reexport)
        return
    if args.remeasure:
        rows = remeasure(args.remeasure)
        out = BENCH / "results" / f"export-remeasure-{time.strftime('%Y%m%dT%H%M%S')}.json"
        meta = {"remeasure": str(args.remeasure), "load": os.getloadavg()}
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return
    specs = {s.name: s for s in load_datasets(BENCH / "datasets.shared.yaml")}
    work = args.work or Path(tempfile.mkdtemp(prefix="keizoku-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["KEIZOKU_HOME"] = str(work / "home")
    rows = []
    shared = os.environ.get("KEIZOKU_SHARED_DATASETS")  # as the tests: another checkout's
    for name in args.sets.split(","):
        if shared and not specs[name].file.exists():
            specs[name].file = Path(shared) / "tabular" / specs[name].file.name
        if not specs[name].file.exists():
            rows.append({"set": name, "error": f"{specs[name].file} is absent"})
            continue
        rows.append(one_set(specs[name], args.budget, args.family, work))
        print(json.dumps(rows[-1], default=str), flush=True)
    out = BENCH / "results" / f"export-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"budget": args.budget, "family": args.family, "load": os.getloadavg()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| set | members | parity max abs diff | bundle µs (graph alone; nodes, trees) | "
        "varied records µs (graph alone) | keizoku µs | native µs | bundle KiB | model KiB | "
        "cold start s | peak RSS MiB |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['set']} | {', '.join(r.get('members', []))} | not exported: "
                         f"{r['error'][:120]} |" + " |" * 8)  # fmt: skip
            continue
        lines.append(
            f"| {r['set']} | {', '.join(r['members'])} ({r['n_members']}) | "
            f"{r['parity_max_abs_diff']:.1e} | {r['bundle_us']:.0f} ({r['run_us']:.0f}; "
            f"{r['nodes']}, {r['trees']}) | {r['varied_us']:.0f} ({r['run_varied_us']:.0f}) | "
            f"{r['keizoku_us']:.0f} | "
            f"{r['native_us']:.0f} ({r['native_family']}) | {r['bundle_kib']:.0f} | "
            f"{r.get('model_kib', 0):.0f} | {r['cold_start_s']:.2f} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
