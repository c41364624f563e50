"""The unattended loop: watermark, cooldown, exit codes for cron, a daemon that survives errors.

(Named test_loop_tick.py: tests/e2e/test_loop.py already owns the module name test_loop.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, log_prediction
from rollout_support import MODEL, cli, frame, trained_project

pytestmark = pytest.mark.slow

SPEC = """
retraining:
  triggers: {drift_features: 1, metric_drop: null, new_labels: null, every: null}
  window: {min_labels: 100000}
  cooldown: 1h
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("loop"), SPEC) as root:
        yield root


def _shifted_traffic(n: int, start: int = 0) -> None:
    """Logged predictions from a moved population (heavier, longer-billed birds)."""
    from keizoku.monitoring.log import PredictionLog

    rows = frame().drop(columns="species").sample(n, replace=True, random_state=start)
    rows["body_mass_g"] = rows["body_mass_g"] + 2500
    rows["bill_length_mm"] = rows["bill_length_mm"] + 20
    now = time.time()
    with PredictionLog() as log:
        for i, rec in enumerate(rows.to_dict("records")):
            log_prediction(
                log, request_id=f"s{start + i}", ts=now, model=MODEL, version=1, variant="champion",
                inputs={k: (None if v != v else v) for k, v in rec.items()},
                prediction="Gentoo", latency_ms=1.0,
            )  # fmt: skip


def _retrains() -> int:
    from keizoku import audit

    return len(audit.read(MODEL, actions=("retrain",)))


def test_drift_is_acted_on_once_then_watermark_and_cooldown_hold(project: Path) -> None:
    _shifted_traffic(200)
    out = cli(project, "monitor", MODEL, "--since", "1h")
    assert out.returncode == 10, out.stdout + out.stderr
    out = cli(project, "loop", MODEL, "--once")
    assert out.returncode == 10, out.stdout + out.stderr
    assert "drift in" in out.stdout
    assert _retrains() == 1
    out = cli(project, "loop", MODEL, "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nothing new since the last retrain attempt" in " ".join(out.stdout.split())
    assert _retrains() == 1
    _shifted_traffic(5, start=1000)
    out = cli(project, "loop", MODEL, "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cooldown: next retrain in" in " ".join(out.stdout.split())
    assert _retrains() == 1


def test_the_daemon_survives_failing_ticks_and_stops_on_sigterm(project: Path) -> None:
    env = {**os.environ, "KEIZOKU_HOME": str(project / ".keizoku"), "COLUMNS": "200"}
    log = project / "loop.log"
    failed = "tick failed: No registered model named 'ghost'"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [KEIZOKU_EXE, "loop", "ghost", "--every", "100ms"], cwd=project,
            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while log.read_text().count(failed) < 2 and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log.read_text()
    assert proc.returncode == 143, out
    assert out.count(failed) >= 2, out
    assert "keizoku loop stopped." in out and "Traceback" not in out


def test_the_loop_judges_drift_with_the_spec_monitoring_section(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`monitoring:` thresholds (here: so high nothing drifts, no domain classifier) are the
    ones the loop's drift trigger uses, as `keizoku monitor` does (it used the defaults)."""
    quiet = (
        "monitoring: {numeric_threshold: 100.0, categorical_threshold: 1.0,"
        " null_threshold: 10.0, multivariate: false}\n"
    )
    with trained_project(tmp_path_factory.mktemp("loop-spec"), SPEC + quiet) as root:
        _shifted_traffic(200)
        seen = cli(root, "monitor", MODEL, "--since", "1h")
        assert seen.returncode == 0, seen.stdout + seen.stderr  # the spec's rule: no drift
        out = cli(root, "loop", MODEL, "--once")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "drift in" not in out.stdout
        assert _retrains() == 0
