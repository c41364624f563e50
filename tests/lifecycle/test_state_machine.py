"""The lifecycle state machine: the transition table, ``transition`` and a stateful property test.

The property test drives one model as operators, a server and the loop would: train (a
good and a label-shuffled model, trained for real once and registered again with the
artifacts their training wrote, then gated like ``keizoku train``), register a never-gated
version, ``retrain --force`` on traffic labelled truly or at random (real training), deploy
split/shadow/canary, canary steps (labels that breach the canary's metric limit must roll
it back), promote (gated, never gated, forced), rollback, tamper with model files, feedback
through the real serving app (valid; an unknown request id or a label outside the classes
is refused with a 4xx and nothing is stored), loop ticks (a second tick at once must not
retrain: watermark / cooldown) and server reloads. After every step:

* the champion, the challenger, every pinned and served version and every version in the
  prediction log passed its gates, or was the first version, or was forced with an audited
  reason;
* after a reload the server serves what registry and deployment say (the heartbeat check
  of ``keizoku status`` agrees), or it refused a tampered version and says so;
* every alias change has an audit entry that names it; the audit chain verifies, and an
  edited copy of it does not.

A scripted walk first takes every rule once through the states that matter; Hypothesis
then interleaves the rules at random.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    precondition,
    rule,
    run_state_machine_as_test,
)

from keizoku import audit
from keizoku.errors import ConflictError, GateError, IntegrityError, NotFoundError, UserInputError
from keizoku.lifecycle import state
from keizoku.lifecycle.gates import split_holdout
from keizoku.lifecycle.retrain import gate_and_admit
from kzsupport import KEIZOKU_EXE, REPO

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

SPEC = """
retraining:
  triggers: {drift_features: 1, metric_drop: null, new_labels: 20, every: null}
  window: {since: 1d, include_original: false, holdout: 0.3, min_labels: 30}
  train: {budget: 30s, preset: fast, models: [linear], max_trials: 1}
  gates: {min_gain: -0.05, bootstrap: 200, max_latency_increase: 1000}
  cooldown: 1h
  rollout: {mode: canary, canary_steps: [20, 60, 100], step_every: 1s, min_labels: 5,
            max_metric_drop: 0.1}
"""
TRAIN = {"budget": 30, "models": ["linear"], "preset": "fast", "max_trials": 1}
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


@dataclass
class Trained:
    """A version trained for real once (model, the artifacts and tags training wrote)."""

    model: Any
    folder: Path
    tags: dict[str, str]

    def files(self) -> dict[str, Path]:
        return {p.name: p for p in sorted(self.folder.iterdir())}


@dataclass
class Template:
    root: Path  # keizoku.yaml (with SPEC), penguins.csv (the spec's data: the fit rows)
    holdout: pd.DataFrame
    traffic: pd.DataFrame
    trained: dict[str, Trained]


def _train_for_real(spec: Path, frame: pd.DataFrame | None, dest: Path) -> Trained:
    """``train_project`` as ``keizoku train`` runs it; keep what it registered."""
    from keizoku.project import train_project
    from keizoku.registry.backend import client
    from keizoku.registry.models import MODEL_FILE, _local_dir, get_version, load_model

    out = train_project(spec, overrides=TRAIN, frame=frame)
    src = _local_dir(client(), NAME, out.version) / "artifacts"
    dest.mkdir(parents=True)
    for path in src.iterdir():
        if path.name != MODEL_FILE:
            shutil.copy(path, dest / path.name)
    skip = (state.STATE_TAG, state.GATE_TAG, "keizoku.sha256", "keizoku.artifacts")
    tags = {k: v for k, v in get_version(f"{NAME}:{out.version}").tags.items()
            if k.startswith("keizoku.") and k not in skip}  # fmt: skip
    return Trained(load_model(f"{NAME}:{out.version}"), dest, tags)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A project (spec, data) and a good and a label-shuffled model trained by keizoku once."""
    from kzsupport import KEIZOKU_EXE

    root = tmp_path_factory.mktemp("sm-template")
    frame = pd.read_csv(REPO / "examples" / "data" / "penguins.csv")
    fit, holdout = split_holdout(frame, "species", "multiclass", seed=0)
    fit.to_csv(root / "penguins.csv", index=False)
    build = root / ".build"
    env = {**os.environ, "KEIZOKU_HOME": str(build)}
    subprocess.run(
        [KEIZOKU_EXE, "init", "penguins.csv", "--target", "species", "--name", NAME],
        cwd=root, env=env, check=True, capture_output=True,
    )  # fmt: skip
    with open(root / "keizoku.yaml", "a") as fh:
        fh.write(SPEC)
    bad = fit.sample(150, random_state=1).reset_index(drop=True)
    bad["species"] = np.random.default_rng(0).permutation(bad["species"].to_numpy())
    old = os.environ["KEIZOKU_HOME"]
    os.environ["KEIZOKU_HOME"] = str(build)
    try:
        trained = {
            "good": _train_for_real(root / "keizoku.yaml", None, root / "good"),
            "bad": _train_for_real(root / "keizoku.yaml", bad, root / "bad"),
        }
    finally:
        os.environ["KEIZOKU_HOME"] = old
    shutil.rmtree(build)
    yield Template(root, holdout, pd.concat([holdout, fit], ignore_index=True), trained)


def _register(trained: Trained) -> int:
    """Register a trained model again, with the artifacts its training wrote (no alias)."""
    from keizoku.registry.tracking import TrainingRun

    with TrainingRun(NAME) as run:
        return run.register(trained.model, trained.files(), trained.tags)


def _gates() -> dict[int, str | None]:
    """Each version's gate tag, read once for all the versions an invariant checks."""
    from keizoku.registry.models import list_versions

    return {v.version: v.tags.get(state.GATE_TAG) for v in list_versions(NAME)}


def _answered(log: list[dict[str, Any]], gates: dict[int, str | None], version: int) -> bool:
    """May ``version`` have answered traffic: it passed its gates (``gates``: from
    :func:`_gates`), or was the first version, or was forced with an audited reason."""
    first = any(e["action"] == "admit" and e["version"] == version
                and e["reason"] == state.FIRST_VERSION for e in log)  # fmt: skip
    forced = any(e["forced"] and e["version"] == version and e["reason"] for e in log)
    return gates.get(version) == "passed" or first or forced


def _challenger_to_try() -> bool:
    """A gated challenger that is not the champion: something to deploy."""
    current = _aliases()
    return "challenger" in current and current["challenger"] != current.get("champion")


def _canary_running() -> bool:
    from keizoku.lifecycle.experiments import active_experiment

    exp = active_experiment(NAME)
    return exp is not None and exp.kind == "canary"


class Lifecycle(RuleBasedStateMachine):
    """One model's lifecycle, driven as an operator, a server and the loop would drive it."""

    tpl: Template
    counts: dict[str, int] = {}  # across examples: proof that the rules really ran

    def __init__(self) -> None:
        from keizoku.lifecycle.policy import parse_policy
        from keizoku.registry import models as store
        from keizoku.spec import load_spec

        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kz-sm-"))
        for name in ("keizoku.yaml", "penguins.csv", "schema.yaml"):
            shutil.copy(self.tpl.root / name, self.root / name)
        os.environ["KEIZOKU_HOME"] = str(self.root / ".keizoku")
        os.chdir(self.root)  # promote of a never-gated version gates it on the spec's data
        store._cache.clear()
        self.spec = self.root / "keizoku.yaml"
        self.policy = parse_policy(load_spec(self.spec)[0].retraining)
        self.rollout = self.policy.rollout
        self.versions: list[int] = []
        self.tampered: set[int] = set()
        self.loaded_before_tamper: set[int] = set()
        self.client: Any = None  # the real serving app, in process
        self.answered: set[int] = set()  # versions that answered a request (responses)
        self.clock = time.time()  # the loop's clock: `later` ticks jump past the cooldown
        self.batch = 0
        self.diluted: set[str] = set()  # experiments whose traffic got true labels

    # --- helpers -------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _step(self, action: Any) -> Any:
        """Run one command; a refusal must leave the aliases as they were. Returns its result."""
        from keizoku.registry.models import list_versions

        before = _aliases() if self.versions else {}
        count = len(audit.read(NAME))
        result = None
        try:
            result = action()
        except (GateError, IntegrityError, NotFoundError, UserInputError, ConflictError):
            assert (_aliases() if self.versions else {}) == before
        self.versions = sorted(v.version for v in list_versions(NAME)) if self.versions else []
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
        return result

    def _start_server(self) -> None:
        """The real serving app (prediction log, feedback route, heartbeat), polling off:
        it picks up registry changes on ``server_reload`` only, as a slow server would."""
        from starlette.testclient import TestClient

        from keizoku.serving.app import ServeOptions, create_app

        app = create_app(ServeOptions(models=[NAME], poll_interval_s=0, log_flush_s=0.2))
        self.client = TestClient(app)
        self.client.__enter__()
        deadline = time.monotonic() + 60
        while self.client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the server did not load the champion"
            time.sleep(0.1)

    @property
    def server(self) -> Any:
        return self.client.app.state.keizoku if self.client is not None else None

    def _traffic(self, n: int) -> list[tuple[dict[str, Any], str]]:
        """``n`` requests through the server; (prediction, true label) per request."""
        from kzsupport import json_records

        self.batch += 1
        rows = self.tpl.traffic.sample(n, random_state=self.batch, replace=True)
        r = self.client.post(
            f"/v1/models/{NAME}/predict", json=json_records(rows.drop(columns="species"))
        )
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        self.answered |= {p["version"] for p in preds}
        return list(zip(preds, rows["species"], strict=True))

    def _feedback(self, labels: list[tuple[str, str]], *, breach: bool = False) -> None:
        from keizoku.lifecycle.experiments import active_experiment

        exp = active_experiment(NAME)
        if exp is not None and not breach:
            self.diluted.add(exp.id)  # this experiment's arms got true labels too
        body = [{"request_id": rid, "label": label} for rid, label in labels]
        r = self.client.post(f"/v1/models/{NAME}/feedback", json=body)
        assert r.status_code == 200 and r.json()["stored"] == len(body), r.text

    def _labels_stored(self) -> int:
        from keizoku.lifecycle.loop import activity

        return activity(NAME)[0]

    # --- rules ---------------------------------------------------------------------------

    @initialize(good=st.booleans())
    def first_train(self, good: bool) -> None:
        self.train(good)
        self._start_server()

    @rule(good=st.booleans())
    def train(self, good: bool) -> None:
        """``keizoku train``: register a candidate, gate it against the champion, admit it."""
        self._count("train")

        def go() -> None:
            version = _register(self.tpl.trained["good" if good else "bad"])
            self.versions.append(version)
            gate_and_admit(NAME, version, self.tpl.holdout, "species", self.policy.gates)

        self._step(go)

    @rule()
    def register_ungated(self) -> None:
        self.versions.append(_register(self.tpl.trained["good"]))

    @rule(good=st.booleans())
    def retrain(self, good: bool) -> None:
        """Traffic, labels (true, or drawn at random), then ``keizoku retrain --force``."""
        from keizoku.lifecycle.retrain import retrain

        answered = self._traffic(60 if good else 120)
        rng = np.random.default_rng(self.batch)
        self._feedback([
            (p["request_id"], label if good else str(rng.choice(CLASSES)))
            for p, label in answered
        ])  # fmt: skip
        outcome = self._step(lambda: retrain(NAME, self.spec, force=True))
        if outcome is not None:
            self._count(f"retrain {'good' if good else 'bad'} {outcome.status}")
            if outcome.status == "passed":
                assert _aliases().get("challenger") == outcome.version

    @rule(kind=st.sampled_from(["unknown request id", "label outside the classes"]))
    def feedback_invalid(self, kind: str) -> None:
        """Bad labels are refused with a 4xx naming the id/value, and nothing is stored."""
        [(pred, _)] = self._traffic(1)
        body = (
            {"request_id": "no-such-request", "label": "Adelie"}
            if kind == "unknown request id"
            else {"request_id": pred["request_id"], "label": "maybe"}
        )
        before = self._labels_stored()
        r = self.client.post(f"/v1/models/{NAME}/feedback", json=body)
        assert 400 <= r.status_code < 500, r.text
        assert ("no-such-request" if kind == "unknown request id" else "maybe") in r.text
        assert self._labels_stored() == before
        self._count("feedback refused")

    @rule(pick=st.integers(0, 20), forced=st.booleans())
    def promote(self, pick: int, forced: bool) -> None:
        from keizoku.lifecycle import experiments

        version = self.versions[pick % len(self.versions)]
        reason = "drill" if forced else ""
        self._count("promote")
        self._step(lambda: experiments.promote(NAME, version, force=forced, reason=reason))

    @rule()
    def roll_back(self) -> None:
        from keizoku.lifecycle import experiments

        self._count("rollback")
        self._step(lambda: experiments.rollback(NAME))

    @rule(pick=st.integers(0, 20))
    def tamper(self, pick: int) -> None:
        from keizoku.home import mlflow_uri
        from keizoku.registry.backend import client
        from keizoku.registry.models import MODEL_FILE, _cache, _local_dir

        version = self.versions[pick % len(self.versions)]
        path = _local_dir(client(), NAME, version) / "artifacts" / MODEL_FILE
        path.write_bytes(path.read_bytes() + b"tampered")  # stays tampered however often
        # Server and commands are separate processes in real life: none holds this version
        # in memory any more, except a server variant that already serves it.
        _cache.pop((mlflow_uri(), NAME, version), None)
        self.tampered.add(version)
        served = self.server.models.models.get(NAME)
        if served and version in {lv.version for lv in served.variants.values()}:
            self.loaded_before_tamper.add(version)  # already in memory: hashes were checked
        self._count("tamper")

    @precondition(lambda self: _challenger_to_try())
    @rule(shadow=st.booleans())
    def deploy(self, shadow: bool) -> None:
        """Route a share of traffic (or a shadow copy) to the challenger, as `keizoku deploy`."""
        from keizoku.lifecycle import experiments

        self._count("deploy")
        if shadow:
            self._step(lambda: experiments.deploy(NAME, shadow="challenger"))
        else:
            self._step(lambda: experiments.deploy(NAME, split={"champion": 90, "challenger": 10}))
        self.server_reload()  # a live server picks the deployment up on its next poll

    @precondition(lambda self: _challenger_to_try())
    @rule(percent=st.sampled_from([20.0, 50.0]))
    def deploy_canary(self, percent: float) -> None:
        """``keizoku deploy NAME --canary P``: a gated challenger only."""
        from keizoku.lifecycle import canary

        self._count("canary start")
        self._step(lambda: canary.start(NAME, percent, self.rollout))
        self.server_reload()

    @precondition(lambda self: _canary_running())
    @rule(breach=st.booleans())
    def canary_step(self, breach: bool) -> None:
        """Traffic and labels, then ``keizoku deploy --canary-step``. With ``breach`` the
        canary's answers are all labelled wrong (the champion's right): once both arms have
        enough labels, the canary must be rolled back, audited, all traffic to the champion."""
        from keizoku.lifecycle import canary
        from keizoku.lifecycle.deployment import load_deployment
        from keizoku.lifecycle.experiments import active_experiment

        exp = active_experiment(NAME)
        assert exp is not None
        self.server_reload()
        answered = self._traffic(80)
        arms = [p["version"] for p, _ in answered]
        judged = (
            breach
            and exp.id not in self.diluted
            and min(arms.count(exp.treatment.version), arms.count(exp.control.version))
            >= self.rollout.min_labels
        )
        labels = []
        for p, truth in answered:
            if breach:
                canary_answer = p["version"] == exp.treatment.version
                wrong = next(c for c in CLASSES if c != p["prediction"])
                labels.append((p["request_id"], wrong if canary_answer else p["prediction"]))
            else:
                labels.append((p["request_id"], truth))
        self._feedback(labels, breach=breach)
        champion = _aliases().get("champion")
        result = self._step(lambda: canary.step(NAME, self.rollout))
        self._count(f"canary {result.action if result else 'refused'}")
        if judged and result is not None:  # every labelled canary answer was wrong
            assert result.action == "rolled_back", result
            assert load_deployment(NAME).versions == {}
            assert _aliases().get("champion") == champion
            entry = audit.read(NAME, actions=("canary_rollback",))[-1]
            assert (entry["version"], entry["evidence"]["experiment"]) == (
                exp.treatment.version, exp.id)  # fmt: skip
        self.server_reload()

    @rule(later=st.booleans())
    def loop_tick(self, later: bool) -> None:
        """``keizoku loop NAME --once``; then at once again: nothing new, nothing retrains."""
        from keizoku.lifecycle import loop

        if later:
            self.clock += 2 * 3600  # past retraining.cooldown
        self._feedback([(p["request_id"], y) for p, y in self._traffic(40)])
        tick = self._step(lambda: loop.tick(NAME, self.spec, now=self.clock))
        if tick is None:
            return
        self._count(f"tick retrain {tick.retrain}")
        assert tick.code in (0, 6, 10, 11), tick
        assert (tick.code == 6) == (tick.retrain == "failed"), tick
        mark = loop.load_watermark(NAME)
        if mark is None or mark.retrain_ts != self.clock:
            return  # no retrain attempt in this tick
        tries = len(audit.read(NAME, actions=("retrain", "register")))
        again = self._step(lambda: loop.tick(NAME, self.spec, now=self.clock))
        assert len(audit.read(NAME, actions=("retrain", "register"))) == tries
        if again is not None:
            assert again.retrain == "skipped" and again.code == 0, again
            why = " ".join(again.reasons)
            assert "nothing new since the last retrain attempt" in why or "cooldown" in why, why
            self._count("tick watermark/cooldown held")

    @rule()
    def server_reload(self) -> None:
        """The server picks up what registry and deployment say now; it then serves exactly
        that, or it refused a version whose files fail their hash check (and says so)."""
        from keizoku.lifecycle.servers import expected_variants, wait_for_servers, write_beat

        self._count("reload")
        models = self.server.models
        report = models.refresh(NAME)  # a refused swap is reported, never raised
        expected = expected_variants(NAME)
        served = models.models[NAME].versions()
        if report.error is None:
            assert served == expected, (served, expected)
        else:
            assert served == report.before, report
            assert (set(expected.values()) - set(served.values())) & self.tampered, report
        write_beat(models, port=None, bind="127.0.0.1", started=time.time(), interval_s=5.0)
        _, _, late = wait_for_servers(NAME, timeout_s=0)
        assert (late == []) == (served == expected), late

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def every_version_that_answered_or_can_answer_passed_its_gates(self) -> None:
        import duckdb

        from keizoku.lifecycle.deployment import load_deployment
        from keizoku.monitoring.log import segment_glob
        from keizoku.monitoring.performance import has_files

        if not self.versions:
            return
        log, gates = audit.read(NAME), _gates()
        for alias, version in load_deployment(NAME).versions.items():
            assert _answered(log, gates, version), f"deployment routes {alias} to v{version}"
        served = self.server.models.models.get(NAME) if self.server is not None else None
        for alias, lv in served.variants.items() if served else []:
            assert _answered(log, gates, lv.version), f"server answers {alias} with v{lv.version}"
            assert lv.version not in self.tampered or lv.version in self.loaded_before_tamper
        logged: set[int] = set()
        if self.server is not None and self.server.log is not None:
            self.server.log.flush()
            pattern = segment_glob(NAME)
            if has_files(pattern):
                sql = f"SELECT DISTINCT version FROM read_parquet('{pattern}', union_by_name=true)"
                logged = {int(r[0]) for r in duckdb.connect().execute(sql).fetchall()}
        for version in self.answered | logged:  # responses and shadow answers
            assert _answered(log, gates, version), f"v{version} answered a request"

    @invariant()
    def champion_and_challenger_passed_their_gates(self) -> None:
        if not self.versions:
            return
        current, gates = _aliases(), _gates()
        if "challenger" in current:
            assert gates[current["challenger"]] == "passed"
        if "champion" in current:
            assert _answered(audit.read(NAME), gates, current["champion"])

    @invariant()
    def audit_chain_verifies(self) -> None:
        if self.versions:
            audit.verify(NAME)

    def teardown(self) -> None:
        """The audit log of this run, edited in one place, no longer verifies."""
        if self.client is not None:
            self.client.__exit__(None, None, None)
        path = audit.audit_path(NAME)
        if not path.exists():
            return
        lines = path.read_text().splitlines(keepends=True)
        copy = self.root / "edited" / "audit"
        copy.mkdir(parents=True)
        shutil.copy(path.with_suffix(".head"), copy / path.with_suffix(".head").name)
        middle = len(lines) // 2
        entry = json.loads(lines[middle])
        entry["reason"] = entry["reason"] + " (edited)"
        lines[middle] = json.dumps(entry) + "\n"
        (copy / path.name).write_text("".join(lines))
        os.environ["KEIZOKU_HOME"] = str(self.root / "edited")
        try:
            with pytest.raises(IntegrityError):
                audit.verify(NAME)
        finally:
            os.environ["KEIZOKU_HOME"] = str(self.root / ".keizoku")
        self._count("edited audit refused")


def _walk(machine: Lifecycle) -> None:
    """Every rule at least once, in an order that reaches each interesting state (a
    challenger, a canary judged on labels, a failed retrain, a refused tampered version);
    the invariants are checked after every step, as Hypothesis does."""
    from keizoku.lifecycle.experiments import active_experiment

    def step(rule_name: str, **kwargs: Any) -> None:
        getattr(machine, rule_name)(**kwargs)
        machine.every_version_that_answered_or_can_answer_passed_its_gates()
        machine.champion_and_challenger_passed_their_gates()
        machine.audit_chain_verifies()

    step("first_train", good=True)
    step("train", good=True)  # the same model again: passes (min_gain -0.05), challenger
    assert _challenger_to_try(), _aliases()
    step("feedback_invalid", kind="unknown request id")
    step("feedback_invalid", kind="label outside the classes")
    step("deploy", shadow=True)
    step("deploy", shadow=False)
    step("deploy_canary", percent=50.0)
    assert _canary_running()
    step("canary_step", breach=True)  # every canary answer labelled wrong: rolled back
    assert active_experiment(NAME) is None and machine.counts.get("canary rolled_back")
    step("deploy_canary", percent=20.0)
    # the canary steps once its step interval (retraining.rollout.step_every) has passed: a
    # short one here, waited for (the interval is not the subject; Hypothesis keeps SPEC's)
    spec_rollout, machine.rollout = machine.rollout, machine.rollout.model_copy(
        update={"step_every": 0.2})  # fmt: skip
    time.sleep(0.2)
    step("canary_step", breach=False)
    machine.rollout = spec_rollout
    step("retrain", good=False)
    step("retrain", good=True)
    step("loop_tick", later=False)
    step("loop_tick", later=True)
    step("register_ungated")
    step("promote", pick=len(machine.versions) - 1, forced=False)  # never gated: gated now
    step("promote", pick=0, forced=True)
    step("roll_back")
    step("tamper", pick=len(machine.versions) - 1)
    step("promote", pick=len(machine.versions) - 1, forced=True)  # tampered: refused
    step("server_reload")


@pytest.mark.slow
def test_lifecycle_state_machine(template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEIZOKU_HOME", os.environ["KEIZOKU_HOME"])
    monkeypatch.chdir(Path.cwd())
    Lifecycle.tpl = template
    started = time.monotonic()
    walk = Lifecycle()
    try:
        _walk(walk)
    finally:
        walk.teardown()
    walked = time.monotonic() - started
    c = Lifecycle.counts
    ran = {k.split(" ")[0] for k in c}  # e.g. "retrain good failed" → "retrain"
    for rule_name in ("train", "retrain", "promote", "rollback", "deploy", "canary", "tick",
                      "feedback", "reload", "tamper", "edited"):  # fmt: skip
        assert rule_name in ran, f"rule {rule_name} never ran: {c}"
    assert c.get("retrain bad passed", 0) == 0, c  # random labels never pass the gates
    # the whole history of the walk verifies through the real executable; an edit does not
    home = walk.root / ".keizoku"
    env = {**os.environ, "KEIZOKU_HOME": str(home)}
    ok = subprocess.run([KEIZOKU_EXE, "history", NAME, "--verify"], env=env,
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([KEIZOKU_EXE, "history", NAME, "--verify"],
                         env={**env, "KEIZOKU_HOME": str(walk.root / "edited")},
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 5, bad.stdout + bad.stderr

    # then Hypothesis interleaves the same rules at random. Its scan of sys.modules for
    # constants (hypothesis 6.170) reads each module's __file__: while MLflow checks a model
    # logged as code on another thread, sys.modules["dbutils"] is MLflow's MockDbutils, whose
    # __file__ is not a path, and the scan raised TypeError mid-draw (a race, seen once in a
    # full run). Only modules with a real path can be local code.
    from hypothesis.internal.conjecture import providers

    local = providers.is_local_module_file
    monkeypatch.setattr(providers, "is_local_module_file",
                        lambda path: isinstance(path, str) and local(path))  # fmt: skip
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=4, stateful_step_count=12, deadline=None, derandomize=True,
            database=None, suppress_health_check=list(HealthCheck),
        ),
    )  # fmt: skip
    print(
        f"\nstate machine: walk {walked:.0f}s, total {time.monotonic() - started:.0f}s, "
        f"{Lifecycle.counts}"
    )
