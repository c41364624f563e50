"""Confidence-based performance estimation on seeded streams: the estimate lands on the
realised metric under covariate shift, and falls when the stream moves where the model
is unsure. Models are scikit-learn ones fitted here; the calibration is the one
``reference.json`` saves (``fit_calibration`` on out-of-fold probabilities)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import cross_val_predict

from keizoku.monitoring.estimate import (
    Calibration,
    estimate_metrics,
    estimate_performance,
    fit_calibration,
    realised_metrics,
)

COEF = np.array([1.5, -1.0, 0.5])


def _draw(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Labels from one fixed concept, P(y=1 | x) = sigmoid(x · COEF): only x moves."""
    return (rng.random(len(x)) < 1 / (1 + np.exp(-x @ COEF))).astype(int)


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, Calibration, float]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    y = _draw(rng, x)
    model = LogisticRegression()
    oof = cross_val_predict(model, x, y, cv=5, method="predict_proba")
    cal = fit_calibration(oof, y, "binary")
    assert cal is not None and cal.kind == "binary" and cal.n == 4000
    return model.fit(x, y), cal, float(accuracy_score(y, oof.argmax(axis=1)))


def _bootstrap_sd(s: np.ndarray, y: np.ndarray, fn: object, rng: np.random.Generator) -> float:
    """Standard deviation of a realised metric over resamples of the stream's rows."""
    values = []
    for _ in range(200):
        i = rng.integers(0, len(s), len(s))
        values.append(fn(y[i], s[i]))  # type: ignore[operator]
    return float(np.std(values))


def test_the_estimate_matches_the_realised_metric_on_a_shifted_stream(
    fitted: tuple[LogisticRegression, Calibration, float],
) -> None:
    model, cal, training_acc = fitted
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3))
    x[:, 0] += 2.0  # the population moves (2 sd), the concept does not
    y = _draw(rng, x)
    s = model.predict_proba(x)[:, 1]
    names = ["accuracy", "roc_auc", "f1"]
    est = estimate_metrics(s, cal, names)
    real = {
        "accuracy": accuracy_score(y, s > 0.5),
        "roc_auc": roc_auc_score(y, s),
        "f1": f1_score(y, s > 0.5),
    }
    # the expected-count formulas give scikit-learn's numbers when fed the labels
    assert realised_metrics(s, y, "binary", names) == pytest.approx(real, abs=1e-3)
    # Tolerance: the realised metric scatters around its expectation with the bootstrap
    # sd of the stream (4 sd: a 1-in-15,000 miss), and a calibration error of the
    # cross-fitted ECE can bias the expectation by at most about that much.
    fns = {
        "accuracy": lambda t, p: accuracy_score(t, p > 0.5),
        "roc_auc": roc_auc_score,
        "f1": lambda t, p: f1_score(t, p > 0.5),
    }
    boot = np.random.default_rng(2)
    for name in names:
        tol = 4 * _bootstrap_sd(s, y, fns[name], boot) + cal.ece
        assert abs(est[name] - real[name]) <= tol, (name, est[name], real[name], tol)
    # and the stream did move the metric: the training accuracy would be the wrong answer
    tol = 4 * _bootstrap_sd(s, y, fns["accuracy"], boot) + cal.ece
    assert abs(real["accuracy"] - training_acc) > tol


def test_estimated_accuracy_drops_when_the_stream_enters_a_low_confidence_region(
    fitted: tuple[LogisticRegression, Calibration, float],
) -> None:
    model, cal, _ = fitted
    rng = np.random.default_rng(3)
    calm = rng.normal(size=(3000, 3))
    unsure = rng.normal(scale=0.15, size=(3000, 3))  # near the boundary: P ≈ 0.5
    y_calm, y_unsure = _draw(rng, calm), _draw(rng, unsure)
    rows = pd.DataFrame({
        "bucket": [0.0] * 3000 + [3600.0] * 3000,
        "score": np.concatenate([model.predict_proba(calm)[:, 1],
                                 model.predict_proba(unsure)[:, 1]]),
        # labels arrived for the first hour only
        "outcome": np.concatenate([y_calm, np.full(3000, np.nan)]),
    })  # fmt: skip
    est = estimate_performance(rows, cal, "binary", "roc_auc", 0.8)
    first, second = est.buckets
    assert (first.n, second.n, first.n_labels, second.n_labels) == (3000, 3000, 3000, 0)
    assert est.metrics == ["roc_auc", "accuracy", "f1"] and est.training == {"roc_auc": 0.8}
    drop = first.estimated["accuracy"] - second.estimated["accuracy"]
    assert drop > 0.15, (first.estimated, second.estimated)
    assert second.realised == {}  # no label there: nothing realised, yet the drop shows
    # the unseen labels of the second hour agree with the estimate (binomial sd ≤ 0.5/√n)
    realised = accuracy_score(y_unsure, rows["score"][3000:] > 0.5)
    assert abs(second.estimated["accuracy"] - realised) <= 4 * 0.5 / np.sqrt(3000) + cal.ece
    assert first.realised["accuracy"] == pytest.approx(
        accuracy_score(y_calm, rows["score"][:3000] > 0.5)
    )


def test_calibration_corrects_an_overconfident_model() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6000, 3))
    y = _draw(rng, x)
    overconfident = 1 / (1 + np.exp(-3 * (x @ COEF)))  # right ranking, probabilities too sure
    cal = fit_calibration(np.column_stack([1 - overconfident, overconfident]), y, "binary")
    assert cal is not None
    assert cal.ece_raw > 0.1 and cal.ece < 0.05 and cal.calibrated
    assert "ECE" in cal.note() and "calibrated" in cal.note()
    xs = rng.normal(size=(5000, 3))
    ys = _draw(rng, xs)
    s = 1 / (1 + np.exp(-3 * (xs @ COEF)))
    naive = np.where(s > 0.5, s, 1 - s).mean()  # the raw confidence overstates accuracy
    est = estimate_metrics(s, cal, ["accuracy"])["accuracy"]
    real = accuracy_score(ys, s > 0.5)
    assert abs(est - real) <= 4 * 0.5 / np.sqrt(5000) + cal.ece
    assert naive - real > 0.05


def test_multiclass_accuracy_is_estimated_from_the_top_probability() -> None:
    rng = np.random.default_rng(5)
    weights = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])

    def draw(x: np.ndarray) -> np.ndarray:  # one concept, P(y | x) = softmax(W x)
        logits = x @ weights.T
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return (rng.random((len(x), 1)) > p.cumsum(axis=1)).sum(axis=1)

    x = rng.normal(scale=1.5, size=(4000, 2))
    y = draw(x)
    model = LogisticRegression()
    oof = cross_val_predict(model, x, y, cv=5, method="predict_proba")
    cal = fit_calibration(oof, y, "multiclass")
    assert cal is not None and cal.kind == "confidence"
    model.fit(x, y)
    xs = rng.normal(loc=0.3, scale=0.5, size=(4000, 2))  # where the classes meet: less sure
    ys = draw(xs)
    proba = model.predict_proba(xs)
    hit = (proba.argmax(axis=1) == ys).astype(float)
    rows = pd.DataFrame({"bucket": 0.0, "score": proba.max(axis=1), "outcome": hit})
    est = estimate_performance(rows, cal, "multiclass", "log_loss", 0.5)
    assert est.metrics == ["accuracy"] and est.training == {}
    assert "log_loss needs every class probability" in est.note
    assert est.realised["accuracy"] == pytest.approx(hit.mean())
    tol = 4 * 0.5 / np.sqrt(4000) + cal.ece
    assert abs(est.estimated["accuracy"] - hit.mean()) <= tol
    assert est.estimated["accuracy"] < accuracy_score(y, oof.argmax(axis=1)) - 0.1


def test_nothing_is_estimated_for_a_regression_or_an_older_version() -> None:
    rows = pd.DataFrame({"bucket": [0.0], "score": [0.3], "outcome": [np.nan]})
    assert fit_calibration(np.zeros(10), np.zeros(10), "regression") is None
    reg = estimate_performance(rows, None, "regression", "rmse", 1.0)
    assert reg.skipped is not None and "regression" in reg.skipped
    old = estimate_performance(rows, None, "binary", "roc_auc", 0.9)
    assert old.skipped is not None and "retrain" in old.skipped
