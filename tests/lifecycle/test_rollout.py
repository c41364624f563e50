"""Promote / rollback / history, the promotion gate and the audit log (real MLflow on SQLite)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from keizoku import audit
from keizoku.errors import GateError, NotFoundError
from keizoku.lifecycle import state
from keizoku.lifecycle.rollout import champion_stack, promote, rollback


def _register(tmp: Path, card: bool = True) -> int:
    """Register a tiny stand-in version (the registry stores any picklable object)."""
    from keizoku.registry.tracking import TrainingRun

    files = {}
    if card:
        (tmp / "model_card.md").write_text("# card\n")
        files["card"] = tmp / "model_card.md"
    with TrainingRun("m") as run:
        return run.register({"stand-in": True}, files, {})  # type: ignore[arg-type]


def _gated(version: int, passed: bool = True, reasons: list[str] | None = None) -> None:
    verdict = {"passed": passed, "reasons": reasons or []}
    state.transition("m", version, "gated-pass" if passed else "gated-fail", action="gate",
                     gate=verdict)  # fmt: skip


@pytest.fixture
def versions(keizoku_home: Path, tmp_path: Path) -> list[int]:
    out = [_register(tmp_path) for _ in range(3)]
    state.transition("m", 1, "champion", action="admit", reason=state.FIRST_VERSION)
    _gated(2)
    _gated(3)
    state.transition("m", 3, "challenger", action="admit")
    return out


def _log(skip: int = 4) -> list[dict]:
    """Audit entries after the fixture's admit/gate/gate/admit."""
    return audit.read("m")[skip:]


def _aliases() -> dict[str, int]:
    from keizoku.registry.backend import client

    return {k: int(v) for k, v in (client().get_registered_model("m").aliases or {}).items()}


def test_promote_moves_champion_and_rollback_restores(versions: list[int]) -> None:
    assert _aliases() == {"champion": 1, "challenger": 3}
    entry = promote("m", 3, actor="alice", reason="better", evidence={"p": 0.01})
    assert _aliases() == {"champion": 3}
    assert (entry["actor"], entry["reason"], entry["version"], entry["previous"]) == (
        "alice", "better", 3, 1)  # fmt: skip
    promote("m", 2, actor="bob", reason="hotfix")
    assert champion_stack("m") == [1, 3]
    assert rollback("m", actor="carol", reason="bad")["version"] == 3
    assert _aliases()["champion"] == 3
    assert rollback("m", actor="carol", reason="worse")["version"] == 1
    assert _aliases()["champion"] == 1
    with pytest.raises(NotFoundError, match="no earlier champion"):
        rollback("m", actor="carol")
    log = _log()
    assert [e["action"] for e in log] == ["promote", "promote", "rollback", "rollback"]
    assert log[0]["evidence"]["p"] == 0.01 and log[0]["time"].endswith("Z")
    assert log[0]["evidence"]["gate"]["time"] == audit.read("m", ("gate",))[-1]["time"]
    assert audit.verify("m") == 8


def test_gate_refuses_a_failed_version_and_force_is_audited(versions: list[int]) -> None:
    state.transition("m", 2, "gated-fail", action="gate",
                     gate={"passed": False, "reasons": ["roc_auc gain -0.01"]})  # fmt: skip
    with pytest.raises(GateError) as exc:
        promote("m", 2, actor="alice", reason="try")
    assert "Version m:2 failed its gates: roc_auc gain -0.01" in exc.value.message
    assert "--force --reason TEXT" in exc.value.message
    assert _aliases()["champion"] == 1
    entry = promote("m", 2, actor="alice", reason="override", force=True)
    assert entry["forced"] and _aliases()["champion"] == 2
    actions = [(e["action"], e["forced"]) for e in _log(5)]
    assert actions == [("promote_refused", False), ("promote", True)]
    refused = _log(5)[0]
    assert refused["evidence"]["refusals"][0].startswith("Version m:2 failed")


def test_gate_refuses_a_version_without_model_card(keizoku_home: Path, tmp_path: Path) -> None:
    _register(tmp_path)
    _register(tmp_path, card=False)
    state.transition("m", 1, "champion", action="admit", reason=state.FIRST_VERSION)
    _gated(2)
    with pytest.raises(GateError, match="has no model card"):
        promote("m", 2, actor="alice")


def _append(home: str, i: int) -> None:
    import os

    os.environ["KEIZOKU_HOME"] = home
    for j in range(50):
        audit.record("m", "probe", actor=f"p{i}", evidence={"j": j, "pad": "x" * 500})


def test_audit_log_concurrent_appends_never_interleave(keizoku_home: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append, args=(str(keizoku_home), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = audit.audit_path("m").read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["action"] == "probe" for line in lines)
    assert audit.verify("m") == 200  # the chain holds under concurrent writers


def test_history_cli_shows_the_audit_log(cli, keizoku_home: Path) -> None:  # type: ignore[no-untyped-def]
    audit.record("m", "promote", actor="alice", reason="won", version=2, previous=1)
    result = cli("history", "m")
    assert result.code == 0, result.text
    assert "promote" in result.text and "alice" in result.text and "won" in result.text
