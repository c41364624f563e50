"""Deep learning: the image CNN on digits as PNG folders, and whether torch_mlp earns a place.

    python bench/deep.py --out bench/work/deep.json [--quick] [--parts digits,mlp]

**digits** (issue 17): scikit-learn's digits (1,797 8x8 images, BSD-3-Clause) written as
PNG class folders under bench/work/deep/digits, read back with ``keizoku.data.images``,
one fixed stratified split (75/25, seed 0). Three models: keizoku's ``ImageCNN`` (15 %
of the training images for early stopping; one thread, as keizoku fits below 20k rows),
scikit-learn's ``SVC()`` on the 64 raw pixels,
and keizoku's tabular search (``good`` preset) on the 64 pixel columns. Per model: test
accuracy, training seconds, and single-image latency (median of 200 calls: decode the PNG
bytes, then predict one image; the tabular search scores a JSON record). With a GPU, the
CNN is trained once more on it.

**mlp**: the ``good`` preset's families with and without ``torch_mlp`` on bundled sets,
``max_trials`` bounded (deterministic): the CV score of the MLP's best trial, the
ensemble's score each way and the search's seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WORK = Path(__file__).resolve().parent / "work" / "deep"


def _write_digits(root: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    if (root / ".done").exists():
        return
    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (img * 255 / 16).round().astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    (root / ".done").touch()


def _latency(fn: Any, items: list[Any], n: int = 200) -> float:
    fn(items[0])
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(items[i % len(items)])
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def digits(quick: bool) -> list[dict[str, Any]]:
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    from keizoku.data.images import load_image, load_images, scan_folder
    from keizoku.deep.cnn import ImageCNN

    root = WORK / "digits"
    _write_digits(root)
    files = scan_folder(root)
    X = load_images(files["path"].tolist(), (8, 8))
    y = files["label"].astype(int).to_numpy()
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=y)
    test_bytes = [Path(p).read_bytes() for p in files["path"].iloc[idx_te]]
    rows: list[dict[str, Any]] = []

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        fit_tr, fit_va = train_test_split(
            idx_tr, test_size=0.15, random_state=0, stratify=y[idx_tr]
        )
        t = time.perf_counter()
        cnn = ImageCNN(device=device, n_jobs=1, max_epochs=30 if quick else 60).fit(
            X[fit_tr], y[fit_tr], eval_set=(X[fit_va], y[fit_va])
        )
        fit_s = time.perf_counter() - t
        acc = float((cnn.predict(X[idx_te]) == y[idx_te]).mean())
        lat = _latency(lambda b, m=cnn: m.predict_proba(load_image(b, (8, 8))[None]), test_bytes)
        rows.append(
            {"model": f"keizoku ImageCNN ({device})", "accuracy": acc, "train_s": fit_s,
             "latency_ms": lat, "epochs": len(cnn.history_), "best_epoch": cnn.best_epoch_}
        )  # fmt: skip

    flat = X.reshape(len(X), -1)
    t = time.perf_counter()
    svc = SVC().fit(flat[idx_tr], y[idx_tr])
    fit_s = time.perf_counter() - t
    rows.append(
        {"model": "scikit-learn SVC (raw pixels)",
         "accuracy": float((svc.predict(flat[idx_te]) == y[idx_te]).mean()), "train_s": fit_s,
         "latency_ms": _latency(lambda b: svc.predict(load_image(b, (8, 8)).reshape(1, -1)),
                                test_bytes)}
    )  # fmt: skip

    from keizoku.data.schema import infer_schema
    from keizoku.training.config import TrainSpec
    from keizoku.training.context import TrainingData
    from keizoku.training.search import run_search

    cols = [f"p{i}" for i in range(flat.shape[1])]
    frame = pd.DataFrame(flat, columns=cols)
    frame["digit"] = y.astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = TrainingData.build(
            frame.iloc[idx_tr].reset_index(drop=True), infer_schema(frame, "digit")
        )
        budget = "20s" if quick else "60s"
        t = time.perf_counter()
        res = run_search(data, TrainSpec.model_validate({"budget": budget}))
        fit_s = time.perf_counter() - t
    test = frame.iloc[idx_te]
    pred = res.model.predict(test[cols])
    records = test[cols].to_dict("records")
    rows.append(
        {"model": f"keizoku tabular search ({budget}, good)",
         "accuracy": float((np.asarray(pred) == test["digit"].to_numpy()).mean()),
         "train_s": fit_s,
         "latency_ms": _latency(lambda r: res.model.predict_raw_records([r]), records),
         "members": sorted({m.family for m in res.model.members})}
    )  # fmt: skip
    return rows


def mlp(quick: bool) -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    from keizoku.data.schema import infer_schema
    from keizoku.training.config import TrainSpec
    from keizoku.training.context import TrainingData
    from keizoku.training.presets import PRESETS
    from keizoku.training.search import run_search

    good = list(PRESETS["good"]["families"])
    trials = 8 if quick else 16
    rows: list[dict[str, Any]] = []
    for loader in (load_breast_cancer, load_wine, load_diabetes):
        frame = loader(as_frame=True).frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = TrainingData.build(frame, infer_schema(frame, "target"))
        row: dict[str, Any] = {"set": loader.__name__.removeprefix("load_")}
        for label, families in (("without", good), ("with", [*good, "torch_mlp"])):
            spec = {"budget": "600s", "max_trials": trials, "models": families}
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run_search(data, TrainSpec.model_validate(spec))
            row[f"{label}_s"] = time.perf_counter() - t
            row[f"{label}_ensemble"] = res.cv_score
            row[f"{label}_members"] = sorted({m.family for m in res.model.members})
            mlps = [t.mean for t in res.trials if t.family == "torch_mlp" and t.status == "ok"]
            if mlps:
                row["mlp_best_trial"] = max(mlps)
        row["metric"] = res.metric.name
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=WORK / "deep.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="digits,mlp")
    args = parser.parse_args()
    parts = args.parts.split(",")
    out: dict[str, Any] = {"quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    for part, fn in (("digits", digits), ("mlp", mlp)):
        if part in parts:
            out[part] = fn(args.quick)
            print(json.dumps({part: out[part]}, indent=1, default=str), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
