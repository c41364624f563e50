"""Typed retrain triggers: one map from a trigger's kind to the exit code cron acts on."""

from __future__ import annotations

import json

import pytest

from keizoku.errors import ExitCode
from keizoku.lifecycle.loop import Tick
from keizoku.lifecycle.retrain import RetrainOutcome, Trigger, TriggerKind, exit_code

DRIFT = Trigger(TriggerKind.DRIFT, "drift in 1 feature(s): x1")
DROP = Trigger(TriggerKind.METRIC_DROP, "live accuracy 0.7 is 0.1 below training 0.8")
LABELS = Trigger(TriggerKind.NEW_LABELS, "1200 new labels since the last retrain")


@pytest.mark.parametrize(
    ("status", "triggers", "code"),
    [
        ("skipped", [], ExitCode.OK),
        ("passed", [LABELS], ExitCode.OK),
        ("skipped", [DROP], ExitCode.METRIC_DROP),
        ("passed", [LABELS, DROP, DRIFT], ExitCode.DRIFT),  # drift takes precedence
        ("failed", [DRIFT, DROP], ExitCode.GATE),  # a failed gate over any trigger
        ("failed", [Trigger(TriggerKind.FORCED, "forced (--force)")], ExitCode.GATE),
    ],
)
def test_exit_code_comes_from_the_kind_not_the_sentence(
    status: str, triggers: list[Trigger], code: ExitCode
) -> None:
    assert exit_code(status, triggers) == code


def test_a_sentence_that_merely_starts_like_drift_is_not_drift() -> None:
    # The old loop parsed sentences ("drift…", "live …"); a schedule trigger whose text
    # happens to begin with those words must not turn into exit 10/11.
    odd = [Trigger(TriggerKind.SCHEDULE, "drift-free for 7 days; live since Monday")]
    assert exit_code("passed", odd) == ExitCode.OK


def test_triggers_are_printed_as_sentences_and_serialised_with_their_kind() -> None:
    outcome = RetrainOutcome("m", "skipped", 1, triggers=[DRIFT, LABELS])
    assert json.loads(json.dumps(outcome.to_dict()))["triggers"] == [
        {"kind": "drift", "sentence": DRIFT.sentence},
        {"kind": "new_labels", "sentence": LABELS.sentence},
    ]
    assert "; ".join(map(str, outcome.triggers)).startswith("drift in 1 feature(s): x1; 1200")
    tick = json.loads(json.dumps(Tick("m", triggers=[DROP]).to_dict()))
    assert tick["triggers"] == [{"kind": "metric_drop", "sentence": DROP.sentence}]
