"""`keizoku monitor` end to end: a shift confined to the last hour, the reference row sample,
the domain classifier, and the reason of every verdict (real registry, real log, the CLI)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzsupport import log_prediction
from rollout_support import MODEL, cli, frame, trained_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("windows")) as root:
        _traffic()
        yield root


def _traffic() -> None:
    """22 hours of the training population, then 150 heavier birds in the last minutes."""
    from keizoku.monitoring.log import PredictionLog

    now = time.time()
    calm = frame().drop(columns="species").sample(2200, replace=True, random_state=0)
    recent = frame().drop(columns="species").sample(150, replace=True, random_state=1)
    recent["body_mass_g"] = recent["body_mass_g"] + 1000  # ≈ 1.25 sd
    stamps = [now - 23.5 * 3600 + i * (21 * 3600 / len(calm)) for i in range(len(calm))]
    stamps += [now - 300 + i for i in range(len(recent))]
    rows = list(calm.to_dict("records")) + list(recent.to_dict("records"))
    with PredictionLog() as log:
        for i, (ts, rec) in enumerate(zip(stamps, rows, strict=True)):
            log_prediction(
                log, request_id=f"w{i}", ts=ts, model=MODEL, version=1, variant="champion",
                inputs={k: (None if v != v else v) for k, v in rec.items()},
                prediction="Gentoo",
            )  # fmt: skip


def test_the_row_sample_is_a_hashed_artifact(project: Path) -> None:
    from keizoku.monitoring.reference import load_reference_sample
    from keizoku.registry import models as store

    info = store.get_version(f"{MODEL}:1")
    assert len(store.recorded_artifacts(info.tags)["reference_sample.parquet"]) == 64
    sample = load_reference_sample(f"{MODEL}:1")
    assert sample is not None and len(sample) == len(frame())  # 344 rows < 5000: all
    assert "species" not in sample.columns and "body_mass_g" in sample.columns


def test_a_shift_confined_to_the_last_hour_is_reported_and_exits_10(project: Path) -> None:
    out = cli(project, "monitor", MODEL, "--version", "1", "--since", "24h", "--json")
    assert out.returncode == 10, out.stderr
    report = json.loads(out.stdout)
    whole = {f["feature"]: f for f in report["features"]}
    recent = {f["feature"]: f for f in report["recent"]}
    assert not whole["body_mass_g"]["drifted"]  # 150 of 2,350 rows: diluted
    assert recent["body_mass_g"]["drifted"]
    assert report["drifted_recent_only"] == ["body_mass_g"]
    assert report["drifted"] == ["body_mass_g"]  # what exit 10 and the loop's trigger count
    reason = recent["body_mass_g"]["reason"]
    assert reason.startswith("wasserstein/std ") and "ks p=" in reason
    assert recent["body_mass_g"]["threshold"] == 0.1
    # judged hour by hour, body mass drifts only in the hour of the heavy birds
    assert report["until"] - 2 * 3600 < report["started"]["body_mass_g"] <= report["until"]
    hours = report["buckets"]["body_mass_g"]
    assert len(hours) >= 22 and not any(d for b, d in hours if b < report["until"] - 2 * 3600)
    multi = report["multivariate"]
    assert multi["skipped"] is None and math.isfinite(multi["auc"])
    assert multi["n_ref"] == len(frame()) and multi["n_cur"] == 2350


def test_the_terminal_and_the_html_report_say_why(project: Path) -> None:
    out = cli(project, "monitor", MODEL, "--version", "1", "--since", "24h", "--html", "d.html")
    assert out.returncode == 10, out.stderr
    text = " ".join(out.stdout.split())
    assert "body_mass_g: shift confined to the recent part" in text
    assert "Multivariate:" in text and "domain classifier AUC" in text
    assert "drift = p &lt; 0.01" not in text and "drift = p < 0.01 and distance ≥ 0.05" in text
    html = (project / "d.html").read_text()
    assert '<section id="recent">' in html and '<section id="multivariate">' in html
    recent = html.split('<section id="recent">')[1].split("</section>")[0]
    assert "Shift confined to the recent part" in recent and "body_mass_g" in recent
    assert "wasserstein/std" in html.split('<section id="features">')[1]  # the why column
