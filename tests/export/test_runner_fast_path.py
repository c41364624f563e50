"""The runner's precomputed fast path (s7) against its full rules: every record the fast
path takes becomes the same graph inputs as the full rules make, values sent as another
JSON type of the same category (3.0 for 3, " low " for "low") included; every record it
declines is the full rules' to accept or refuse, with their message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export_support import Models, need_onnx_extra
from keizoku.export import export_onnx
from keizoku.export.bundle import records_of
from keizoku.export.runner import Bundle, RecordError

need_onnx_extra()


@pytest.fixture(scope="module")
def bundle(models: Models, registry_home: Path) -> tuple[Bundle, list[dict[str, Any]]]:
    frame = models.frame("binary")
    export_onnx(models.ref("binary", "lightgbm"), registry_home.parent / "b", frame)
    loaded = Bundle(registry_home.parent / "b")
    return loaded, records_of(frame.head(40), list(loaded.fields))


def variants(record: dict[str, Any]) -> list[dict[str, Any]]:
    """``record`` and the same values sent as other JSON a client may send."""
    return [
        record,
        {**record, "grade": float(record["grade"])},  # an integer category as 3.0
        {**record, "band": f" {record['band']} "},  # canonical text strips
    ]


def test_the_fast_path_makes_the_inputs_the_full_rules_make(
    bundle: tuple[Bundle, list[dict[str, Any]]],
) -> None:
    runner, records = bundle
    fast = 0
    for record in (v for r in records for v in variants(r)):
        runner._check(0, record, allow_unseen=False)  # valid by the full rules
        row = runner._fast_row(record)
        if row is not None:
            fast += 1
            assert row[1] == runner._row(record)[1]
            np.testing.assert_array_equal(row[0], runner._row(record)[0])
    assert fast == 3 * len(records)  # every plain record and every variant took it


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grade": True}, "field 'grade' = True: expected a number"),
        ({"grade": 9}, "field 'grade' = 9"),  # unseen: refused without allow_unseen
        ({"band": 3}, "field 'band' = 3: expected a string"),
        ({"band": "LOW"}, "field 'band' = 'LOW'"),  # unseen: only true/false change case
        ({"mean radius": "12"}, "field 'mean radius' = '12': expected a number"),
        ({"mean radius": float("nan")}, "expected a finite number"),
        ({"mean radius": 1e16}, "number is too large"),
    ],
)
def test_what_the_fast_path_declines_the_full_rules_refuse(
    bundle: tuple[Bundle, list[dict[str, Any]]], change: dict[str, Any], message: str
) -> None:
    runner, records = bundle
    record = {**records[0], **change}
    assert runner._fast_row(record) is None
    with pytest.raises(RecordError) as refused:
        runner.predict(record)
    assert message in str(refused.value), refused.value


def test_one_record_and_a_batch_answer_alike(
    bundle: tuple[Bundle, list[dict[str, Any]]],
) -> None:
    runner, records = bundle
    batch = runner.predict(records)
    one_by_one = [runner.predict(r)[0] for r in records]
    assert [a["prediction"] for a in batch] == [a["prediction"] for a in one_by_one]
    for a, b in zip(batch, one_by_one, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-12)
        assert sum(a["probabilities"].values()) == pytest.approx(1.0)
