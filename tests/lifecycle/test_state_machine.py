"""The lifecycle state machine: the transition table, ``transition`` and a stateful property test.

The property test interleaves training (a good and a label-shuffled model, each
registered and gated like ``keizoku train`` does), registering a never-gated version,
promoting (gated, ungated, forced), rolling back and tampering with model files, and
asserts after every step:

* the champion passed its gates, or was the first version, or was forced with an
  audited reason; the challenger passed its gates;
* every alias change has an audit entry that names it;
* the audit chain verifies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from keizoku import audit
from keizoku.errors import ConflictError, GateError, IntegrityError, NotFoundError, UserInputError
from keizoku.lifecycle import state
from keizoku.lifecycle.gates import GateConfig, split_holdout
from keizoku.lifecycle.retrain import gate_and_admit
from keizoku.lifecycle.rollout import promote, rollback
from kzsupport import REPO

NAME = "m"


def _stand_in(tmp: Path, obj: Any = None) -> int:
    """Register a version cheaply (the registry stores any picklable object)."""
    from keizoku.registry.tracking import TrainingRun

    (tmp / "model_card.md").write_text("# card\n")
    with TrainingRun(NAME) as run:
        return run.register(obj if obj is not None else {"stand-in": True},  # type: ignore[arg-type]
                            {"card": tmp / "model_card.md"}, {})  # fmt: skip


def _to(entry: dict[str, Any]) -> str | None:
    return (entry["evidence"].get("transition") or {}).get("to")


def _aliases() -> dict[str, int]:
    from keizoku.registry.models import aliases

    return aliases(NAME)


# --- the table and transition, on stand-in versions -------------------------------------


def test_only_the_first_version_becomes_champion_without_a_gate(
    keizoku_home: Path, tmp_path: Path
) -> None:
    v1, v2 = _stand_in(tmp_path), _stand_in(tmp_path)
    assert _aliases() == {}  # registering sets no alias: no traffic before the gates
    assert state.states(NAME) == {1: "registered", 2: "registered"}
    entry = state.transition(NAME, v1, "champion", action="admit", reason=state.FIRST_VERSION)
    assert entry["evidence"]["transition"]["meaning"] == state.FIRST_VERSION
    with pytest.raises(ConflictError) as exc:
        state.transition(NAME, v2, "champion", action="admit")
    assert exc.value.message.startswith(
        "Version m:2 is registered; it cannot become champion (from registered it may "
        "become: champion, gated-fail, gated-pass)."
    )
    with pytest.raises(ConflictError, match="it cannot become challenger"):
        state.transition(NAME, v2, "challenger", action="admit")
    assert _aliases() == {"champion": 1}


def test_transition_moves_aliases_tags_and_audit_together(
    keizoku_home: Path, tmp_path: Path
) -> None:
    for _ in range(3):
        _stand_in(tmp_path)
    state.transition(NAME, 1, "champion", action="admit", reason=state.FIRST_VERSION)
    for v in (2, 3):
        state.transition(NAME, v, "gated-pass", action="gate", gate={"passed": True})
    state.transition(NAME, 2, "challenger", action="admit")
    state.transition(NAME, 3, "challenger", action="admit")
    assert _aliases() == {"champion": 1, "challenger": 3}
    assert state.states(NAME) == {1: "champion", 2: "gated-pass", 3: "challenger"}
    state.transition(NAME, 3, "champion", action="promote")
    assert _aliases() == {"champion": 3}
    assert state.states(NAME) == {1: "archived", 2: "gated-pass", 3: "champion"}
    actions = [(e["action"], e["version"]) for e in audit.read(NAME)]
    assert actions == [("admit", 1), ("gate", 2), ("gate", 3), ("admit", 2), ("admit", 3),
                       ("promote", 3)]  # fmt: skip
    assert audit.verify(NAME) == 6


def test_a_failing_audit_write_restores_aliases_and_tags(
    keizoku_home: Path, tmp_path: Path
) -> None:
    _stand_in(tmp_path)
    _stand_in(tmp_path)
    state.transition(NAME, 1, "champion", action="admit", reason=state.FIRST_VERSION)
    state.transition(NAME, 2, "gated-pass", action="gate", gate={"passed": True})
    head = audit.audit_path(NAME).with_suffix(".head")
    head.unlink()
    head.mkdir()  # the head record cannot be replaced: the audit write fails
    try:
        with pytest.raises(OSError):
            state.transition(NAME, 2, "champion", action="promote")
    finally:
        head.rmdir()
    assert _aliases() == {"champion": 1}
    assert state.states(NAME) == {1: "champion", 2: "gated-pass"}


def test_forcing_needs_a_reason_and_is_audited(keizoku_home: Path, tmp_path: Path) -> None:
    _stand_in(tmp_path)
    _stand_in(tmp_path)
    state.transition(NAME, 1, "champion", action="admit", reason=state.FIRST_VERSION)
    with pytest.raises(UserInputError, match="needs a reason"):
        state.transition(NAME, 2, "champion", action="promote", forced=True)
    entry = state.transition(NAME, 2, "champion", action="promote", forced=True, reason="hotfix")
    assert (
        entry["forced"] and entry["evidence"]["transition"]["meaning"] == "forced from registered"
    )


# --- the stateful property test ------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A good and a label-shuffled penguins model, trained once, plus a hold-out."""
    from keizoku.data.schema import infer_schema
    from keizoku.training.config import TrainSpec
    from keizoku.training.context import TrainingData
    from keizoku.training.search import run_search

    frame = pd.read_csv(REPO / "examples" / "data" / "penguins.csv")
    fit, holdout = split_holdout(frame, "species", "multiclass", seed=0)
    bad = fit.sample(150, random_state=1).reset_index(drop=True)
    bad["species"] = np.random.default_rng(0).permutation(bad["species"].to_numpy())
    out: dict[str, Any] = {"holdout": holdout}
    for key, data in (("good", fit), ("bad", bad)):
        schema = infer_schema(data, "species")
        cfg = TrainSpec(budget=60, models=["lightgbm"], preset="fast", max_trials=2)
        out[key] = run_search(TrainingData.build(data, schema), cfg).model
    yield out


class Lifecycle(RuleBasedStateMachine):
    good: Any = None
    bad: Any = None
    holdout: pd.DataFrame | None = None
    counts: dict[str, int] = {}  # across examples: proof that the rules really ran

    def __init__(self) -> None:
        from keizoku.registry import models as store

        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kz-sm-"))
        os.environ["KEIZOKU_HOME"] = str(self.root / ".keizoku")
        os.chdir(self.root)  # no keizoku.yaml here: ungated promotes have no data
        store._cache.clear()
        self.versions: list[int] = []
        self.tampered: set[int] = set()
        self.loaded_before_tamper: set[int] = set()
        self.server: Any = None
        self.seen = 0

    def _step(self, action: Any) -> None:
        """Run one command; a refusal must leave the aliases as they were."""
        before = _aliases() if self.versions else {}
        count = len(audit.read(NAME))
        try:
            action()
        except (GateError, IntegrityError, NotFoundError, UserInputError, ConflictError):
            assert (_aliases() if self.versions else {}) == before
        after = _aliases() if self.versions else {}
        new = audit.read(NAME)[count:]
        for alias, version in after.items():
            if before.get(alias) != version:
                moved = [e for e in new if e["version"] == version and _to(e) == alias]
                assert moved, f"alias {alias} → {version} without an audit entry"
        if before != after:
            assert new, "aliases changed without an audit entry"
        if after.get("champion") != before.get("champion"):
            assert after["champion"] not in self.tampered, "a tampered version became champion"

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    @initialize(good=st.booleans())
    def first_train(self, good: bool) -> None:
        self.train(good)

    @rule(good=st.booleans())
    def train(self, good: bool) -> None:
        self._count("train")

        def go() -> None:
            version = _stand_in(self.root, self.good if good else self.bad)
            self.versions.append(version)
            gate_and_admit(NAME, version, self.holdout, "species", GateConfig(bootstrap=200))

        self._step(go)

    @rule()
    def register_ungated(self) -> None:
        self.versions.append(_stand_in(self.root, self.good))

    @rule(pick=st.integers(0, 20), forced=st.booleans())
    def promote(self, pick: int, forced: bool) -> None:
        if not self.versions:
            return
        version = self.versions[pick % len(self.versions)]
        reason = "drill" if forced else ""
        self._count("promote")
        self._step(lambda: promote(NAME, version, force=forced, reason=reason))

    @rule()
    def roll_back(self) -> None:
        if self.versions:
            self._count("rollback")
            self._step(lambda: rollback(NAME))

    @rule(pick=st.integers(0, 20))
    def tamper(self, pick: int) -> None:
        from keizoku.registry.backend import client
        from keizoku.registry.models import MODEL_FILE, _local_dir

        if not self.versions:
            return
        version = self.versions[pick % len(self.versions)]
        path = _local_dir(client(), NAME, version) / "artifacts" / MODEL_FILE
        data = path.read_bytes()
        path.write_bytes(data + b"tampered")  # stays tampered however often it is done
        self.tampered.add(version)
        served = self.server.models.get(NAME) if self.server is not None else None
        if served and version in {lv.version for lv in served.variants.values()}:
            self.loaded_before_tamper.add(version)  # already in memory: hashes were checked
        self._count("tamper")

    @rule(shadow=st.booleans())
    def deploy(self, shadow: bool) -> None:
        """Route a share of traffic (or a shadow copy) to the challenger, as `keizoku deploy`."""
        from keizoku.lifecycle import experiments

        if not self.versions:
            return
        self._count("deploy")
        if shadow:
            self._step(lambda: experiments.deploy(NAME, shadow="challenger"))
        else:
            self._step(lambda: experiments.deploy(NAME, split={"champion": 90, "challenger": 10}))
        self.server_reload()  # a live server picks the deployment up on its next poll

    @rule()
    def server_reload(self) -> None:
        """A server (the real ModelSet) picks up what the registry and deployment say now."""
        from keizoku.serving.state import ModelSet

        if not self.versions:
            return
        self._count("reload")
        if self.server is None:
            self.server = ModelSet(names=[NAME])
        self.server.refresh(NAME)  # a refused swap is reported, never raised

    def _answers_traffic(self, version: int, log: list[dict[str, Any]]) -> bool:
        from keizoku.registry.models import get_version

        tags = get_version(f"{NAME}:{version}").tags
        first = any(e["action"] == "admit" and e["version"] == version
                    and e["reason"] == state.FIRST_VERSION for e in log)  # fmt: skip
        forced = any(e["forced"] and e["version"] == version and e["reason"] for e in log)
        return tags.get(state.GATE_TAG) == "passed" or first or forced

    @invariant()
    def every_version_that_can_answer_passed_its_gates(self) -> None:
        from keizoku.lifecycle.deployment import load_deployment

        if not self.versions:
            return
        log = audit.read(NAME)
        pinned = load_deployment(NAME).versions
        for alias, version in pinned.items():
            assert self._answers_traffic(version, log), f"deployment routes {alias} to v{version}"
        served = self.server.models.get(NAME) if self.server is not None else None
        for alias, lv in served.variants.items() if served else []:
            assert self._answers_traffic(lv.version, log), (
                f"server answers {alias} with v{lv.version}"
            )
            assert lv.version not in self.tampered or lv.version in self.loaded_before_tamper

    @invariant()
    def champion_and_challenger_passed_their_gates(self) -> None:
        from keizoku.registry.models import get_version

        if not self.versions:
            return
        log = audit.read(NAME)
        current = _aliases()
        if "challenger" in current:
            tags = get_version(f"{NAME}:{current['challenger']}").tags
            assert tags.get(state.GATE_TAG) == "passed"
        if "champion" in current:
            v = current["champion"]
            tags = get_version(f"{NAME}:{v}").tags
            first = any(e["action"] == "admit" and e["version"] == v
                        and e["reason"] == state.FIRST_VERSION for e in log)  # fmt: skip
            forced = any(e["forced"] and e["version"] == v and e["reason"] for e in log)
            assert tags.get(state.GATE_TAG) == "passed" or first or forced

    @invariant()
    def audit_chain_verifies(self) -> None:
        audit.verify(NAME)


@pytest.mark.slow
def test_lifecycle_state_machine(models: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEIZOKU_HOME", os.environ["KEIZOKU_HOME"])
    monkeypatch.chdir(Path.cwd())
    Lifecycle.good, Lifecycle.bad, Lifecycle.holdout = (
        models["good"],
        models["bad"],
        models["holdout"],
    )
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=8, stateful_step_count=12, deadline=None, derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )  # fmt: skip
    assert Lifecycle.counts["train"] >= 5 and Lifecycle.counts.get("promote", 0) >= 3, (
        Lifecycle.counts
    )
    assert Lifecycle.counts.get("deploy", 0) >= 1 and Lifecycle.counts.get("reload", 0) >= 1, (
        Lifecycle.counts
    )
