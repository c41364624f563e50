"""The console tests' project (see conftest.py): peng v1 (champion) and v2 (challenger, gated),
an A/B split, a planted drift in the prediction log, labels for its first two days (worse
predictions on the second), a spec with its own thresholds, a RAG collection with a
forbidden document, and three keys (viewer, operator, one to revoke). Built once per
package."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kzsupport import Server, until
from rollout_support import MODEL, cli, frame, trained_copy

DRIFTED = "bill_length_mm"  # the feature whose values are shifted in the last 24 hours
HOURS, PER_HOUR, SHIFTED_HOURS = 72, 300, 24
LABELLED_HOURS, WORSE_FROM = 48, 24  # labels for hours 0-47; a third wrong from hour 24 on
NUMERIC_THRESHOLD, METRIC_DROP = 0.2, 0.1  # the spec's (defaults: 0.05 and 0.05)
OTHER = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
SECRET = "marmoset77"  # only in the hr-only document


@dataclass
class Project:
    root: Path
    home: Path
    server: Server
    viewer: str
    operator: str
    doomed: str

    @property
    def url(self) -> str:
        return self.server.url


def plant_log(home: Path, start: float) -> int:
    """HOURS of hourly traffic for v1; DRIFTED shifted by +15 mm in the last SHIFTED_HOURS;
    labels for the first LABELLED_HOURS, a third of the predictions wrong from WORSE_FROM."""
    import pyarrow as pa

    from keizoku.monitoring import buckets
    from keizoku.monitoring.feedback import record_feedback
    from keizoku.monitoring.log import PredictionLog
    from keizoku.monitoring.reference import load_reference
    from keizoku.prediction import Prediction

    ref = load_reference(f"{MODEL}:1")
    types = {
        f: pa.float64() if r.kind == "numeric" else pa.string() for f, r in ref.features.items()
    }
    rows = frame()  # nulls included: the reference's null rates hold in the traffic too
    # each row's inputs and label, read once (a pandas row per prediction cost seconds)
    records = [({f: None if pd.isna(row[f]) else row[f] for f in ref.features}, str(row["species"]))
               for _, row in rows.iterrows()]  # fmt: skip
    rng = np.random.default_rng(3)
    log = PredictionLog(root=home, flush_interval_s=3600)
    n = 0
    labels: list[dict[str, Any]] = []
    for hour in range(HOURS):
        picks = rng.integers(0, len(rows), PER_HOUR)
        for i, pick in enumerate(picks):
            features, label = records[pick]
            inputs: dict[str, Any] = dict(features)
            if hour >= HOURS - SHIFTED_HOURS and inputs[DRIFTED] is not None:
                inputs[DRIFTED] = float(inputs[DRIFTED]) + 15.0
            said = OTHER[label] if hour >= WORSE_FROM and i % 3 == 0 else label
            pred = Prediction(said, {said: 0.9}, 0.9, 1, "champion", f"r{hour}-{i}", None)
            if hour < LABELLED_HOURS:
                labels.append({"request_id": pred.request_id, "label": label})
            ts = start + hour * 3600 + i * (3600 / PER_HOUR)
            log.append(pred, ts=ts, model=MODEL, inputs=inputs, latency_ms=2.0 + i % 7, types=types)
            n += 1
    log.close()
    buckets.wait_folded()
    record_feedback(MODEL, labels, root=home)
    # a segment the folding queue had no room for (planting outruns it) is folded "later",
    # by the next catch_up: do it now, so no page reads a partial count
    with warnings.catch_warnings():  # the planted probabilities are 0.9 for one class only
        warnings.simplefilter("ignore")
        buckets.catch_up(MODEL, root=home)
    return n


def set_spec(root: Path) -> None:
    """The spec's own drift threshold and metric-drop alert, for the page to draw."""
    import yaml

    path = root / "keizoku.yaml"
    spec = yaml.safe_load(path.read_text())
    spec.setdefault("monitoring", {})["numeric_threshold"] = NUMERIC_THRESHOLD
    spec.setdefault("retraining", {}).setdefault("triggers", {})["metric_drop"] = METRIC_DROP
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def build_kb(root: Path) -> None:
    """Collection ``kb`` (hybrid: the bundled embedding model), ingested by ``keizoku rag
    ingest`` (the fork server has the model's libraries imported; this process may not)."""
    from keizoku import auth

    docs = root / "kb"
    docs.mkdir()
    (docs / "hr.md").write_text(
        "---\nallow: [group:hr]\n---\n# Pay\n\n## Salaries\n\n"
        f"The salary review code is {SECRET}. Salaries are reviewed every April.\n"
    )
    (docs / "handbook.md").write_text(
        "---\nallow: [group:everyone]\n---\n# Handbook\n\n## Holidays\n\n"
        "Holidays are booked in the team calendar two weeks ahead. The salary review "
        "happens once a year.\n"
    )
    out = cli(root, "rag", "ingest", str(docs), "--collection", "kb")
    assert out.returncode == 0, out.stderr
    auth.set_user_groups("olga", ["hr"])
    auth.set_user_groups("vic", ["sales"])


@pytest.fixture(scope="package")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from keizoku import auth

    root = trained_copy(tmp_path_factory.mktemp("console"))
    home = root / ".keizoku"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        viewer = auth.create_key("vic-viewer", "predict", user="vic")
        operator = auth.create_key("olga-op", "admin", user="olga")
        doomed = auth.create_key("temp-viewer", "predict", user="vic")
        build_kb(root)
        set_spec(root)
        start = (time.time() // 3600 - HOURS) * 3600
        plant_log(home, start)
        out = cli(root, "deploy", MODEL, "--split", "champion=90,challenger=10")
        assert out.returncode == 0, out.stderr
        env = {**os.environ, "KEIZOKU_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        # it shares its request counts every 0.2 s (serve --share-interval; 5 s by default)
        server = Server(root, "--poll-interval", "1", "--share-interval", "0.2s",
                        env=env).wait_ready()  # fmt: skip
        rows = [{f: None if pd.isna(v) else v for f, v in r.items() if f != "species"}
                for r in frame().head(20).to_dict("records")]  # fmt: skip
        r = server.client.post(f"/v1/models/{MODEL}/predict", json=rows,
                               headers={"Authorization": f"Bearer {viewer}"})  # fmt: skip
        assert r.status_code == 200, r.text  # shared within 0.2 s: see shared_requests
        try:
            yield Project(root, home, server, viewer, operator, doomed)
        finally:
            server.stop()


@pytest.fixture
def shared_requests(project: Project) -> None:
    """Wait until the server has shared the project's requests (every ``--share-interval``,
    0.2 s here): the monitoring page draws its requests section from them, so a test that
    reads it sooner would see none. Asked by those tests, not by ``project``."""
    from keizoku.monitoring.buckets import request_series

    # this home's log root, as the pages
    until(lambda: request_series(MODEL, 3600, 0.0), 60, "the server's shared request counts")


@pytest.fixture(scope="module")  # not wider: see kzsupport.chromium_browser
def browser() -> Iterator[Any]:
    from kzsupport import chromium_browser

    with chromium_browser() as b:
        yield b
