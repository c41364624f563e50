"""AutoGluon TabularPredictor under the same time budget (preset from --preset)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from _runner import dir_size, main, one_row_frames, proba_frame, single_row_latency, versions

METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "root_mean_squared_error"}


def run(args, task, train, test):
    from autogluon.tabular import TabularPredictor

    target = task["target"]
    kind = task["task"]
    train = train.copy()
    if kind != "regression":
        train[target] = train[target].astype(str)
    preset = args.preset or "medium_quality"
    path = args.out / "ag_model"
    t0 = time.perf_counter()
    predictor = TabularPredictor(
        label=target, problem_type=kind, eval_metric=METRIC[kind], path=str(path), verbosity=1
    ).fit(train, time_limit=args.budget, presets=preset, num_cpus=2)
    fit_s = time.perf_counter() - t0
    # what a user ships: the predictor without the models it does not need
    try:
        predictor.persist()  # keep models in memory for online prediction, as AutoGluon advises
    except Exception:  # noqa: BLE001
        pass
    xt = test.drop(columns=[target])
    t0 = time.perf_counter()
    if kind == "regression":
        preds = pd.DataFrame({"prediction": np.asarray(predictor.predict(xt))})
        one = lambda r: predictor.predict(r)  # noqa: E731
    else:
        proba = predictor.predict_proba(xt)
        preds = proba_frame(proba.to_numpy(), list(proba.columns), task["classes"])
        preds.insert(0, "prediction", np.asarray(proba.columns)[proba.to_numpy().argmax(axis=1)])
        one = lambda r: predictor.predict_proba(r)  # noqa: E731
    predict_s = time.perf_counter() - t0
    preds.to_parquet(args.out / "preds.parquet", index=False)
    res = {"fit_s": fit_s, "predict_s": predict_s, "model_bytes": dir_size(path)}
    res.update(single_row_latency(one, one_row_frames(test, target)))
    res["versions"] = versions("autogluon.tabular", "lightgbm", "catboost", "xgboost-cpu")
    try:
        lb = predictor.leaderboard(silent=True)
        res["notes"] = f"preset {preset}; best {predictor.model_best}; {len(lb)} models"
    except Exception:  # noqa: BLE001
        res["notes"] = f"preset {preset}"
    return res


if __name__ == "__main__":
    main(run)
