"""`keizoku monitor` estimates the live metric from the served probabilities (CBPE), per
hour, beside the labelled metric where feedback arrived: real registry, real log and
feedback store, the real executable."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rollout_support import MODEL, cli, frame, trained_project

pytestmark = pytest.mark.slow

LABELLED = 200  # rows of the first hour that get feedback; the second hour gets none


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    with trained_project(tmp_path_factory.mktemp("cbpe")) as root:
        yield root, _traffic()


def _traffic() -> dict[str, Any]:
    """Every penguin scored by v1 and logged with its probabilities: 200 in one hour
    (labelled afterwards), the rest in the next hour (no label yet). Even rows are scored
    by the server's own code (``score`` = the top probability); odd rows are logged as
    older servers did (no ``score``), so the monitor must read both."""
    from keizoku.data.labels import canonical
    from keizoku.monitoring.feedback import store_feedback
    from keizoku.monitoring.log import PredictionLog
    from keizoku.prediction import Prediction
    from keizoku.registry.models import load_model
    from keizoku.serving.fastpath import score

    model = load_model(f"{MODEL}:1")
    rows = frame()
    features = rows.drop(columns="species")
    raw = np.asarray(model.predict_raw(features))
    classes = [canonical(c) for c in model.classes or []]
    labels = [canonical(x) for x in model.labels(raw)]
    hour = math.floor(time.time() / 3600) * 3600
    stamps = [hour - 7200 + i if i < LABELLED else hour - 3600 + i - LABELLED
              for i in range(len(rows))]  # fmt: skip
    with PredictionLog() as log:
        for i, rec in enumerate(features.to_dict("records")):
            probs = {c: float(p) for c, p in zip(classes, raw[i], strict=True)}
            if i % 2:
                pred = Prediction(labels[i], probs, None, 1, "champion", f"c{i}")
            else:
                (pred,) = score(model, [rec], version=1, variant="champion", ids=[f"c{i}"])
                assert pred.score == pytest.approx(max(probs.values()))
                assert pred.probabilities == pytest.approx(probs)
            inputs = {k: (None if v != v else v) for k, v in rec.items()}
            log.append(pred, ts=stamps[i], model=MODEL, inputs=inputs, latency_ms=1.0)
    truth = [canonical(s) for s in rows["species"]]
    store_feedback(MODEL, [{"request_id": f"c{i}", "label": truth[i]} for i in range(LABELLED)])
    hits = np.array([p == t for p, t in zip(labels, truth, strict=True)], dtype=float)
    return {"hits": hits, "top": raw.max(axis=1), "hours": (hour - 7200, hour - 3600)}


def test_monitor_estimates_each_hour_beside_the_labelled_metric(
    project: tuple[Path, dict[str, Any]],
) -> None:
    root, traffic = project
    out = cli(root, "monitor", MODEL, "--version", "1", "--since", "24h", "--json")
    assert out.returncode in (0, 10, 11), out.stderr
    est = json.loads(out.stdout)["estimated"]
    assert est["skipped"] is None and est["metrics"] == ["accuracy"]  # peng's metric: log_loss
    assert "log_loss needs every class probability" in est["note"]
    assert est["n"] == len(frame()) and est["n_labels"] == LABELLED
    first, second = est["buckets"]
    assert (first["bucket"], second["bucket"]) == traffic["hours"]
    assert (first["n"], first["n_labels"], second["n_labels"]) == (LABELLED, LABELLED, 0)
    hits = traffic["hits"]
    assert first["realised"]["accuracy"] == pytest.approx(hits[:LABELLED].mean())
    assert second["realised"] == {}
    # the estimate is the calibrated top probability, averaged: within 4 binomial sd
    # (≤ 0.5/√n) plus the calibration's own error of the realised accuracy
    cal = est["calibration"]
    assert cal["kind"] == "confidence" and cal["n"] > 0 and math.isfinite(cal["ece"])
    for b, part in ((first, hits[:LABELLED]), (second, hits[LABELLED:])):
        tol = 4 * 0.5 / math.sqrt(len(part)) + cal["ece"]
        assert abs(b["estimated"]["accuracy"] - part.mean()) <= tol


def test_the_terminal_and_the_html_report_show_the_estimate(
    project: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = project
    page = tmp_path / "drift.html"
    out = cli(root, "monitor", MODEL, "--version", "1", "--since", "24h", "--html", str(page))
    assert out.returncode in (0, 10, 11), out.stderr
    assert "Estimated from the confidence of 344 predictions (CBPE): accuracy" in out.stdout
    assert "realised on 200 labels: accuracy" in out.stdout
    assert "Calibration:" in out.stdout and "per bucket (estimated[/realised])" in out.stdout
    html = page.read_text()
    assert "Performance estimated from confidence (CBPE)" in html
    assert 'data-chart="estimated"' in html and "realised (labels)" in html


def test_a_data_file_with_its_target_gets_estimate_and_realised(
    project: tuple[Path, dict[str, Any]],
) -> None:
    root, traffic = project
    out = cli(root, "monitor", MODEL, "--version", "1", "--data", "penguins.csv", "--json")
    assert out.returncode in (0, 10, 11), out.stderr
    est = json.loads(out.stdout)["estimated"]
    assert est["n"] == est["n_labels"] == len(frame())
    assert est["realised"]["accuracy"] == pytest.approx(traffic["hits"].mean())
    tol = 4 * 0.5 / math.sqrt(len(frame())) + est["calibration"]["ece"]
    assert abs(est["estimated"]["accuracy"] - traffic["hits"].mean()) <= tol
