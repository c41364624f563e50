"""Gates before traffic, through the real ``keizoku`` executable (issue 10, items 1, 2, 10-12).

One home for the module, built step by step:

1. ``train`` on 150 label-shuffled penguins → v1, champion (first version, audited);
2. ``train`` on all penguins → v2, gated against v1 on rows v1 never saw → challenger;
3. ``train`` on the shuffled rows again → v3 fails its gates: exit 6, no alias, and the
   challenger (v2) keeps its alias (a failed gate used to remove it).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kzsupport import KEIZOKU_EXE, REPO, CliResult

pytestmark = pytest.mark.slow

# One trial, not a wall-clock budget: the same model on a fast or a loaded machine. The
# gates are what is checked: a linear model on the true labels beats one on shuffled labels.
TRAIN = ("--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1")


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".keizoku"
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(self.home)}

    def __call__(self, *args: str, cwd: Path | None = None) -> CliResult:
        proc = subprocess.run(
            [KEIZOKU_EXE, *args], cwd=cwd or self.root, env=self.env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        return CliResult(proc)

    def aliases(self) -> dict[str, int]:
        out = self("models", "penguins")
        assert out.code == 0, out.text
        return _aliases_from(self)

    def history(self) -> list[dict[str, Any]]:
        out = self("history", "penguins", "--json", "--limit", "1000")
        assert out.code == 0, out.text
        return [json.loads(line) for line in out.out.splitlines()]


def _aliases_from(kz: Home) -> dict[str, int]:
    """Read from the registry in this process (a subprocess per read cost seconds)."""
    from keizoku.registry.models import aliases

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(kz.home))
        return {k: int(v) for k, v in aliases("penguins").items()}


def _one_line_error(result: CliResult, code: int) -> None:
    assert result.code == code, result.text
    assert "Traceback" not in result.err, result.err
    # A piped `train` logs its progress on stderr first: the error is its last line.
    lines = result.err.strip().splitlines()
    assert lines[-1].startswith("error:"), result.err
    assert sum(line.startswith("error:") for line in lines) == 1, result.err


@pytest.fixture(scope="module")
def kz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("gates")
    frame = pd.read_csv(REPO / "examples" / "data" / "penguins.csv")
    frame.to_csv(root / "penguins.csv", index=False)
    bad = frame.sample(150, random_state=1).reset_index(drop=True)
    bad["species"] = np.random.default_rng(0).permutation(bad["species"].to_numpy())
    bad.to_csv(root / "shuffled.csv", index=False)
    kz = Home(root)
    assert kz("init", "penguins.csv", "--target", "species").code == 0
    spec = (root / "keizoku.yaml").read_text()
    (root / "bad.yaml").write_text(spec.replace("penguins.csv", "shuffled.csv"))
    yield kz


def test_first_version_is_champion_and_audited(kz: Home) -> None:
    result = kz("train", "-c", "bad.yaml", *TRAIN)
    assert result.code == 0, result.text
    assert "as champion (first version, no champion to gate against)" in result.text
    assert kz.aliases() == {"champion": 1}
    admit = [e for e in kz.history() if e["action"] == "admit"]
    assert admit[0]["version"] == 1 and admit[0]["reason"] == (
        "first version, no champion to gate against"
    )
    assert admit[0]["evidence"]["transition"] == {
        "from": "registered", "to": "champion",
        "meaning": "first version, no champion to gate against"}  # fmt: skip


def test_a_better_version_passes_its_gates_and_becomes_challenger(kz: Home) -> None:
    result = kz("train", *TRAIN)
    assert result.code == 0, result.text
    assert "penguins:2: it passed its gates against the champion and is the challenger" in (
        result.text
    )
    assert kz.aliases() == {"champion": 1, "challenger": 2}
    gate = [e for e in kz.history() if e["action"] == "gate"][-1]
    assert gate["version"] == 2 and gate["evidence"]["gates"]["passed"] is True
    names = [c["name"] for c in gate["evidence"]["gates"]["checks"]]
    assert names == ["metric_gain", "baseline", "latency", "evidence"]


def test_shuffled_labels_fail_exit_6_and_leave_the_challenger_alone(kz: Home) -> None:
    result = kz("train", "-c", "bad.yaml", *TRAIN)
    _one_line_error(result, 6)
    assert "penguins:3 failed its gates" in result.err
    assert "the champion and challenger are unchanged" in result.text
    assert kz.aliases() == {"champion": 1, "challenger": 2}
    models = kz("models", "penguins")
    assert "gated-fail" in models.text and "challenger" in models.text


def test_a_failed_version_cannot_be_promoted_and_evidence_says_so(kz: Home) -> None:
    refused = kz("promote", "penguins", "3")
    _one_line_error(refused, 6)
    assert "Version penguins:3 failed its gates" in refused.err
    no_reason = kz("promote", "penguins", "3", "--force")
    _one_line_error(no_reason, 2)
    assert "--force on penguins:3 needs --reason TEXT" in no_reason.err
    evidence = kz("evidence", "penguins:3")
    assert evidence.code == 6 and "sufficient" not in evidence.text
    assert kz.aliases() == {"champion": 1, "challenger": 2}
    assert kz.history()[-1]["action"] == "promote_refused"


def _register_ungated(kz: Home) -> int:
    """A version registered without gates (as before this change): state 'registered'.

    In this process (a new interpreter per registration cost seconds of imports)."""
    from keizoku.registry import TrainingRun, load_model

    card = kz.root.parent / f"{kz.root.name}-card" / "model_card.md"
    card.parent.mkdir(exist_ok=True)
    card.write_text("# card")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(kz.home))
        with TrainingRun("penguins") as run:
            return int(run.register(load_model("penguins:2"), {"card": card}, {}))


def test_promote_of_a_never_gated_version_gates_it_or_names_the_command(kz: Home) -> None:
    version = _register_ungated(kz)
    elsewhere = kz.root.parent / f"{kz.root.name}-elsewhere"  # outside the project:
    elsewhere.mkdir()  # no keizoku.yaml found walking up, so no data to gate on
    refused = kz("promote", "penguins", str(version), cwd=elsewhere)
    _one_line_error(refused, 6)
    assert f"keizoku promote penguins {version} --data LABELLED.csv" in refused.err
    assert kz.aliases() == {"champion": 1, "challenger": 2}
    ok = kz("promote", "penguins", str(version), "--reason", "gated here")
    assert ok.code == 0, ok.text
    assert kz.aliases() == {"champion": version, "challenger": 2}
    log = kz.history()
    gate = [e for e in log if e["action"] == "gate" and e["version"] == version]
    assert gate and gate[-1]["evidence"]["gates"]["passed"] is True
    promote = log[-1]
    assert promote["action"] == "promote" and promote["previous"] == 1
    assert promote["evidence"]["gate"]["evidence"]["passed"] is True  # what it relied on
    assert promote["evidence"]["transition"]["from"] == "gated-pass"


def _artifact(kz: Home, version: int, filename: str) -> Path:
    from keizoku.registry.backend import client
    from keizoku.registry.models import _local_dir

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEIZOKU_HOME", str(kz.home))
        return _local_dir(client(), "penguins", version) / "artifacts" / filename


def test_rollback_refuses_a_tampered_version(kz: Home) -> None:
    champion = kz.aliases()["champion"]
    path = _artifact(kz, 1, "keizoku_model.pkl")
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        result = kz("rollback", "penguins")
        _one_line_error(result, 5)
        assert "keizoku_model.pkl' of penguins:1 was modified after registration" in result.err
        assert kz.aliases()["champion"] == champion
    finally:
        path.write_bytes(original)
    card = _artifact(kz, 1, "model_card.md")
    saved = card.read_bytes()
    card.write_bytes(saved + b"\nedited")
    try:
        _one_line_error(kz("rollback", "penguins"), 5)
    finally:
        card.write_bytes(saved)
    assert kz("rollback", "penguins").code == 0
    assert kz.aliases()["champion"] == 1


def test_a_corrupted_reference_json_is_one_line_exit_5(kz: Home) -> None:
    path = _artifact(kz, 1, "reference.json")
    saved = path.read_bytes()
    path.write_bytes(saved[: len(saved) // 2])
    try:
        result = kz("monitor", "penguins")
        _one_line_error(result, 5)
        assert "Artifact 'reference.json' of penguins:1 was modified" in result.err
    finally:
        path.write_bytes(saved)


def test_history_verify_detects_an_edited_and_a_deleted_entry(kz: Home) -> None:
    ok = kz("history", "penguins", "--verify")
    assert ok.code == 0 and "hash chain intact" in ok.text, ok.text
    table = kz("history", "penguins", "--limit", "1000")
    assert table.code == 0, table.text
    assert "promote_refused" in table.text and "Traceback" not in table.text
    path = kz.home / "audit" / "penguins.jsonl"
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    try:
        path.write_text("".join(lines[:1] + [lines[1].replace('"admit"', '"promote"')] + lines[2:]))
        edited = kz("history", "penguins", "--verify")
        _one_line_error(edited, 5)
        assert "entry 3" in edited.text and "does not follow entry 2" in edited.text
        path.write_text("".join(lines[:-1]))
        deleted = kz("history", "penguins", "--verify")
        _one_line_error(deleted, 5)
        assert "the last entry was edited or deleted" in deleted.text
    finally:
        path.write_text(original)
    assert kz("history", "penguins", "--verify").code == 0


def test_actor_is_the_os_user_and_cannot_be_given(kz: Home) -> None:
    import getpass

    before = kz.history()
    assert {e["actor"] for e in before} == {getpass.getuser()}
    result = kz("rollback", "penguins", "--actor", "alice")
    assert result.code != 0 and "alice" not in json.dumps(kz.history())
    assert len(kz.history()) == len(before)


@pytest.mark.parametrize(
    "args",
    [
        ("rollback", "nosuch"),
        ("history", "x" * 300),
        ("rollback", "x" * 300),
        ("promote", "x" * 300, "2"),
        ("models", "x' OR name LIKE '%"),
        ("retrain", "../etc"),
    ],
)
def test_names_are_checked_before_anything_is_written(kz: Home, args: tuple[str, ...]) -> None:
    before = sorted(p.name for p in (kz.home / "audit").iterdir())
    result = kz(*args)
    assert result.code in (2, 3), result.text
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) <= 4
    assert sorted(p.name for p in (kz.home / "audit").iterdir()) == before
