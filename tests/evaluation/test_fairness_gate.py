"""Planted bias: the fairness evidence shows the gap and the gate refuses promotion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import keizoku.project
from keizoku.cli import app
from keizoku.errors import UserInputError
from keizoku.evaluation.fairness import fairness_report, parse_fairness
from keizoku.evaluation.gate import check_evidence
from keizoku.evaluation.report import write_report
from keizoku.registry.models import version_artifact
from keizoku.spec import Spec, load_spec

from .conftest import Trained, biased_frame, train_frame


def _spec(trained: Trained, limits: dict[str, float]) -> Spec:
    spec, _ = load_spec(trained.spec)
    return spec.model_copy(update={"fairness": parse_fairness(limits)})


def test_planted_bias_shows_in_fairness_evidence(biased: Trained) -> None:
    fairness = json.loads(version_artifact(biased.ref, "fairness.json").read_text())
    body = fairness["columns"]["group"]
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["A"]["selection_rate"] > 0.35
    assert groups["B"]["selection_rate"] < 0.1
    assert body["gaps"]["demographic_parity_difference"] > 0.3
    assert body["gaps"]["equalized_odds_difference"] > 0.1
    assert groups["A"]["count"] + groups["B"]["count"] == 1500


def test_gate_refuses_biased_model_naming_column_gap_and_limit(biased: Trained) -> None:
    spec = _spec(biased, {"max_demographic_parity_difference": 0.1})
    reasons = check_evidence(biased.name, biased.version, spec)
    gap = json.loads(version_artifact(biased.ref, "fairness.json").read_text())["columns"]["group"][
        "gaps"
    ]["demographic_parity_difference"]
    assert reasons == [
        f"Version {biased.ref}: fairness gap on sensitive column 'group': "
        f"demographic_parity_difference = {gap:.4f} exceeds the limit 0.1 (spec key "
        "fairness.max_demographic_parity_difference; measured on cross-validation (out-of-fold "
        "predictions)). Reduce the gap (rebalance or relabel the data, drop proxy features) "
        "and retrain, or raise the limit."
    ]
    assert check_evidence(biased.name, biased.version, None) == []  # no limits, card present


def test_report_fairness_section_marks_the_gap(biased: Trained, tmp_path: Path) -> None:
    spec = _spec(biased, {"max_demographic_parity_difference": 0.1})
    html = write_report(biased.ref, tmp_path / "r.html", spec=spec).read_text()
    fair = html.split('<section id="fairness">')[1].split("</section>")[0]
    assert "Sensitive column 'group'" in fair
    assert '<tr class="bad"><td>demographic_parity_difference</td>' in fair
    assert "exceeds" in fair


def test_evidence_cli_exits_6_with_the_reason(biased: Trained) -> None:
    spec_file = biased.folder / "limits.yaml"
    spec = _spec(biased, {"max_equalized_odds_difference": 0.05})
    spec.save(spec_file)
    result = CliRunner().invoke(app, ["evidence", biased.ref, "--config", str(spec_file)])
    assert result.exit_code != 0
    assert result.exception is not None
    assert "equalized_odds_difference" in str(result.exception)
    assert getattr(result.exception, "exit_code", None) == 6


def test_fair_model_passes_the_gate(binary: Trained) -> None:
    spec = _spec(
        binary,
        {"max_demographic_parity_difference": 0.2, "max_equalized_odds_difference": 0.25},
    )
    assert check_evidence(binary.name, binary.version, spec) == []


def test_limits_without_sensitive_column_are_refused(regression: Trained) -> None:
    spec = _spec(regression, {"max_mae_difference": 5.0})
    [reason] = check_evidence(regression.name, regression.version, spec)
    assert "has no sensitive column to measure them on" in reason
    assert "keizoku init --sensitive COL" in reason


def test_version_without_card_is_refused(
    eval_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keizoku.project, "ARTIFACT_BUILDERS", ())  # as before this package
    # Any trained version will do (the card is what is missing): one linear trial, and
    # max_trials, not a 5 s clock, ends the search.
    cheap = {"models": ["linear"], "max_trials": 1}
    old = train_frame(tmp_path, biased_frame(300, seed=3), "label", "ev-nocard", overrides=cheap)
    reasons = check_evidence(old.name, old.version, None)
    assert reasons == [
        f"Version {old.ref} has no model card (artifact model_card.md). Retrain it with "
        "`keizoku train`, which writes the card with every version."
    ]


def test_bad_fairness_key_names_key_and_valid_keys() -> None:
    with pytest.raises(UserInputError) as info:
        parse_fairness({"max_dp": 0.1})
    assert "keizoku.yaml: fairness.max_dp is not a known key. Known keys:" in info.value.message
    assert "max_demographic_parity_difference" in info.value.message


def test_fairness_report_on_known_numbers() -> None:
    # group a: 2 of 4 selected, TPR 1, FPR 0; group b: 0 of 4 selected, TPR 0, FPR 0
    from keizoku.data.schema import Column, Schema

    schema = Schema(
        columns=[
            Column(name="g", kind="categorical", role="sensitive", dtype="str"),
            Column(name="y", kind="categorical", role="target", dtype="int"),
        ],
        target="y",
        task="binary",
    )
    frame = pd.DataFrame({"g": list("aaaabbbb")})
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    p1 = np.array([0.9, 0.8, 0.1, 0.2, 0.1, 0.3, 0.2, 0.1])
    report = fairness_report("binary", y, np.column_stack([1 - p1, p1]), frame, schema, "test")
    gaps = report["columns"]["g"]["gaps"]
    assert gaps["demographic_parity_difference"] == pytest.approx(0.5)
    assert gaps["equalized_odds_difference"] == pytest.approx(1.0)
    assert gaps["error_rate_difference"] == pytest.approx(0.5)
