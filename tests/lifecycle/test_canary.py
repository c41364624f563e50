"""Canary rollout: steps up on its schedule, rolls back (audited) on a breach, promotes at 100 %."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout_support import MODEL, cli, set_gate, trained_project

pytestmark = pytest.mark.slow

SPEC_ROLLOUT = """
retraining:
  rollout:
    canary_steps: [10, 50, 100]
    step_every: 250ms  # the schedule, short: its length is not what is tested
    max_error_rate: 0.05
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("canary"), SPEC_ROLLOUT) as root:
        yield root


def _deployment(root: Path) -> dict:
    path = root / ".keizoku" / "deployments" / f"{MODEL}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _step(root: Path) -> dict:
    out = cli(root, "deploy", MODEL, "--canary-step", "--no-wait")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _beat(root: Path, version: int, total: int, errors: int) -> Path:
    """A live server elsewhere reporting its 5xx counts, as its heartbeat does."""
    path = root / ".keizoku" / "servers" / "other-host-1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    beat = {"pid": 1, "host": f"not-{socket.gethostname()}", "port": 8000, "bind": "0.0.0.0",
            "started": time.time() - 60, "beat": time.time(), "interval_s": 60.0,
            "models": {MODEL: {
                "variants": {"champion": 1, "challenger": version},
                "requests": {str(version): {"total": total, "errors": errors}}}}}  # fmt: skip
    path.write_text(json.dumps(beat))
    return path


def test_canary_rolls_back_on_errors_then_steps_up_to_promotion(project: Path) -> None:
    from keizoku import audit
    from keizoku.registry.backend import client
    from keizoku.registry.models import resolve

    client().delete_model_version_tag(MODEL, "2", "keizoku.gate")  # as if never gated
    out = cli(project, "deploy", MODEL, "--canary", "10", "--no-wait")
    assert out.returncode == 8, "an ungated challenger may not get canary traffic"
    set_gate(2, "passed")
    out = cli(project, "deploy", MODEL, "--canary", "10", "--no-wait")
    assert out.returncode == 0, out.stderr
    exp = json.loads(out.stdout)
    assert exp["kind"] == "canary" and exp["steps"] == [10.0, 50.0, 100.0]
    assert _deployment(project)["split"] == {"champion": 90.0, "challenger": 10.0}
    from keizoku.lifecycle.canary import step as canary_step
    from keizoku.lifecycle.policy import Rollout

    assert canary_step(MODEL, Rollout.model_validate({"step_every": "1h"})).action == "waiting"
    time.sleep(0.3)  # past step_every
    step = _step(project)
    assert (step["action"], step["percent"]) == ("stepped", 50.0)
    assert _deployment(project)["split"] == {"champion": 50.0, "challenger": 50.0}

    beat = _beat(project, 2, total=100, errors=20)
    step = _step(project)
    assert step["action"] == "rolled_back"
    assert "error rate 20.0% of v2 (20/100 requests) is above" in step["reason"]
    assert _deployment(project)["versions"] == {}
    entry = audit.read(MODEL, actions=("canary_rollback",))[-1]
    assert (entry["version"], entry["evidence"]["experiment"]) == (2, exp["id"])
    assert resolve(f"{MODEL}@champion")[1] == 1
    beat.unlink()

    out = cli(project, "deploy", MODEL, "--canary", "10", "--no-wait")
    assert out.returncode == 0, out.stderr
    for expected in ("stepped", "promoted"):
        time.sleep(0.3)  # past step_every
        assert _step(project)["action"] == expected
    assert resolve(f"{MODEL}@champion")[1] == 2
    promo = audit.read(MODEL, actions=("promote",))[-1]
    assert promo["evidence"]["kind"] == "canary"
    assert _deployment(project)["split"] == {"champion": 100.0}
