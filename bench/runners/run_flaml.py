"""FLAML AutoML under the same time budget (metric: roc_auc / roc_auc_ovr / rmse)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
from _runner import dir_size, main, one_row_frames, proba_frame, single_row_latency, versions

METRIC = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "rmse"}


def run(args, task, train, test):
    from flaml import AutoML

    target = task["target"]
    x, y = train.drop(columns=[target]), train[target]
    kind = task["task"]
    if kind != "regression":
        y = y.astype(str)
    # FLAML wants object columns as category
    obj = [c for c in x.columns if x[c].dtype == object or str(x[c].dtype) in ("string", "str")]
    for c in obj:
        x[c] = x[c].astype("category")
    automl = AutoML()
    t0 = time.perf_counter()
    automl.fit(
        x, y,
        task="regression" if kind == "regression" else "classification",
        metric=METRIC[kind], time_budget=args.budget, seed=0, n_jobs=2, verbose=0,
        log_file_name=str(args.out / "flaml.log"),
    )
    fit_s = time.perf_counter() - t0

    def prep(df):
        df = df.copy()
        for c in obj:
            df[c] = df[c].astype("category")
        return df

    xt = test.drop(columns=[target])
    t0 = time.perf_counter()
    if kind == "regression":
        preds = pd.DataFrame({"prediction": automl.predict(prep(xt))})
        one = lambda r: automl.predict(prep(r))  # noqa: E731
    else:
        proba = automl.predict_proba(prep(xt))
        preds = proba_frame(proba, list(automl.classes_), task["classes"])
        preds.insert(0, "prediction", np.asarray(automl.classes_)[proba.argmax(axis=1)])
        one = lambda r: automl.predict_proba(prep(r))  # noqa: E731
    predict_s = time.perf_counter() - t0
    preds.to_parquet(args.out / "preds.parquet", index=False)
    path = args.out / "automl.pkl"
    with open(path, "wb") as fh:
        pickle.dump(automl, fh)
    res = {"fit_s": fit_s, "predict_s": predict_s, "model_bytes": dir_size(path)}
    res.update(single_row_latency(one, one_row_frames(test, target)))
    res["versions"] = versions("flaml", "lightgbm", "xgboost-cpu", "scikit-learn")
    res["notes"] = f"best: {automl.best_estimator}"
    return res


if __name__ == "__main__":
    main(run)
