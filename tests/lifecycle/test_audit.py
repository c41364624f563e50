"""The audit log: hash chain and head record, and the entries for failed commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keizoku import audit
from keizoku.errors import IntegrityError, UserInputError
from keizoku.lifecycle import state
from kzsupport import REPO


def test_each_entry_carries_the_hash_of_the_previous_line(keizoku_home: Path) -> None:
    import hashlib

    first = audit.record("m", "register", version=1)
    second = audit.record("m", "admit", version=1, reason="first")
    assert first["prev_hash"] == audit.GENESIS
    line1 = audit.audit_path("m").read_text().splitlines()[0]
    assert second["prev_hash"] == hashlib.sha256(line1.encode()).hexdigest()
    assert audit.verify("m") == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ls: ls[:1] + [ls[1].replace('"b"', '"x"')] + ls[2:], "entry 3 (c at "),
        (lambda ls: ls[:1] + ls[2:], "entry 2 (c at "),
        (lambda ls: ls[:-1], "entry 2 (the last) does not match the head record (3 entries"),
        (lambda ls: ls[:-1] + [ls[-1].replace('"c"', '"x"')], "entry 3 (the last) does not"),
        (lambda ls: ls[:1] + ["{not json}\n"] + ls[2:], "entry 2 is not a chained entry"),
    ],
)
def test_verify_names_the_first_bad_entry(keizoku_home: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    for action in ("a", "b", "c"):
        audit.record("m", action)
    path = audit.audit_path("m")
    path.write_text("".join(damage(path.read_text().splitlines(keepends=True))))
    with pytest.raises(IntegrityError) as exc:
        audit.verify("m")
    assert message in exc.value.message


def test_a_deleted_head_record_is_reported(keizoku_home: Path) -> None:
    audit.record("m", "a")
    audit.audit_path("m").with_suffix(".head").unlink()
    with pytest.raises(IntegrityError, match="its head record .* is missing or unreadable"):
        audit.verify("m")


def test_audit_refuses_a_name_that_would_leave_its_folder(keizoku_home: Path) -> None:
    with pytest.raises(UserInputError, match="is not valid"):
        audit.record("../x", "a")
    assert not (keizoku_home / "x.jsonl").exists()


@pytest.fixture
def spec_with_stand_in_champion(keizoku_home: Path, tmp_path: Path) -> Path:
    """A penguins project whose champion is a stand-in: gating it fails (not a model)."""
    from keizoku.project import init_project
    from keizoku.registry.tracking import TrainingRun
    from keizoku.spec import DataSpec

    csv = tmp_path / "penguins.csv"
    csv.write_text((REPO / "examples" / "data" / "penguins.csv").read_text())
    spec = tmp_path / "keizoku.yaml"
    init_project(str(csv), "species", read=DataSpec(), spec_path=spec)
    text = spec.read_text()
    spec.write_text(text + "retraining:\n  window: {min_labels: 0, include_original: true}\n")
    with TrainingRun("penguins") as run:
        version = run.register({"stand-in": True}, {}, {})  # type: ignore[arg-type]
    state.transition("penguins", version, "champion", action="admit", reason=state.FIRST_VERSION)
    return spec


def test_a_crash_after_registering_leaves_nothing_registered(
    spec_with_stand_in_champion: Path,
) -> None:
    import pandas as pd

    from keizoku.lifecycle.retrain import train_candidate
    from keizoku.registry.models import aliases, list_versions

    holdout = pd.read_csv(spec_with_stand_in_champion.parent / "penguins.csv").head(40)
    # one trial: a real candidate to register (the search itself is not this test's subject;
    # a bare 5 s budget kept searching for all of it, ~4 s of CPU)
    with pytest.raises(UserInputError, match="is not a keizoku model"):
        train_candidate(
            spec_with_stand_in_champion, frame=None, holdout=holdout,
            overrides={"budget": "5s", "models": ["lightgbm"], "max_trials": 1},
        )  # fmt: skip
    assert [v.version for v in list_versions("penguins")] == [1]
    assert aliases("penguins") == {"champion": 1}
    log = audit.read("penguins")
    assert [e["action"] for e in log] == ["admit", "register", "register_undone"]
    assert log[-1]["version"] == 2 and log[-1]["reason"].startswith("UserInputError")
    assert audit.verify("penguins") == 3


def test_a_crashed_retrain_is_audited(spec_with_stand_in_champion: Path) -> None:
    from keizoku.lifecycle.retrain import retrain

    with pytest.raises(UserInputError, match="is not a keizoku model"):
        retrain("penguins", spec_with_stand_in_champion, force=True)
    entry = audit.read("penguins")[-1]
    assert (entry["action"], entry["evidence"], entry["previous"]) == (
        "retrain", {"status": "crashed"}, 1)  # fmt: skip
    assert json.dumps(entry).count("UserInputError") == 1
