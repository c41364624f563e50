"""Baseline: LightGBM with default parameters (object columns as pandas categories)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
from _runner import dir_size, main, one_row_frames, proba_frame, single_row_latency, versions


def prepare(x: pd.DataFrame, cats: dict[str, pd.CategoricalDtype]) -> pd.DataFrame:
    x = x.copy()
    for c, dtype in cats.items():
        x[c] = pd.Categorical(x[c], categories=dtype.categories)
    return x


def run(args, task, train, test):
    import lightgbm as lgb

    target = task["target"]
    x, y = train.drop(columns=[target]), train[target]
    obj = [c for c in x.columns if x[c].dtype == object or str(x[c].dtype) in ("string", "category", "str")]
    cats = {
        c: pd.CategoricalDtype(sorted(x[c].dropna().astype(str).unique())) for c in obj
    }
    t0 = time.perf_counter()
    if task["task"] == "regression":
        model = lgb.LGBMRegressor(random_state=0, verbose=-1)
    else:
        model = lgb.LGBMClassifier(random_state=0, verbose=-1)
        y = y.astype(str)
    model.fit(prepare(x, cats), y)
    fit_s = time.perf_counter() - t0

    xt = test.drop(columns=[target])
    t0 = time.perf_counter()
    if task["task"] == "regression":
        preds = pd.DataFrame({"prediction": model.predict(prepare(xt, cats))})
        one = lambda r: model.predict(prepare(r, cats))  # noqa: E731
    else:
        proba = model.predict_proba(prepare(xt, cats))
        preds = proba_frame(proba, list(model.classes_), task["classes"])
        preds.insert(0, "prediction", np.asarray(model.classes_)[proba.argmax(axis=1)])
        one = lambda r: model.predict_proba(prepare(r, cats))  # noqa: E731
    predict_s = time.perf_counter() - t0
    preds.to_parquet(args.out / "preds.parquet", index=False)
    path = args.out / "model.pkl"
    path.write_bytes(pickle.dumps((model, cats)))
    res = {"fit_s": fit_s, "predict_s": predict_s, "model_bytes": dir_size(path)}
    res.update(single_row_latency(one, one_row_frames(test, target)))
    res["versions"] = versions("lightgbm", "scikit-learn", "pandas")
    res["notes"] = "default parameters; object columns -> pandas category"
    return res


if __name__ == "__main__":
    main(run)
