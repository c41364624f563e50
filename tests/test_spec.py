"""The typed spec: every section strict, every error one line naming section, key, value, fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from keizoku.duration import parse_duration
from keizoku.errors import UserInputError
from keizoku.evaluation.fairness import parse_fairness
from keizoku.lifecycle.policy import parse_policy
from keizoku.monitoring.monitor import drift_config
from keizoku.spec import Spec, load_spec, spec_from_dict

BASE = {"project": "p", "target": "species", "data": {"path": "penguins.csv"}}
PENGUINS = Path(__file__).parent.parent / "examples" / "data" / "penguins.csv"

# (section patch, the whole expected message after "keizoku.yaml: ")
MISSPELT = [
    (
        {"monitoring": {"alpa": 0.5}},
        "monitoring.alpa is not a known key (did you mean 'alpha'?). "
        "Known keys: alpha, auc_threshold, categorical_threshold, min_rows, multivariate, "
        "multivariate_rows, null_threshold, numeric_threshold, psi_threshold, recent, window.",
    ),
    (
        {"serving": {"port": 8080}},
        "serving.port is not a known key. Known keys: none yet: remove it.",
    ),
    (
        {"retraining": {"triggers": {"evry": "7d"}}},
        "retraining.triggers.evry is not a known key (did you mean 'every'?). "
        "Known keys: drift_features, every, metric_drop, new_labels.",
    ),
    (
        {"fairness": {"max_demographic_parity_diff": 0.1}},
        "fairness.max_demographic_parity_diff is not a known key (did you mean "
        "'max_demographic_parity_difference'?). Known keys: max_demographic_parity_difference, "
        "max_equalized_odds_difference, max_error_rate_difference, max_mae_difference.",
    ),
    (
        {"train": {"budgett": "5s"}},
        "train.budgett is not a known key (did you mean 'budget'?). Known keys: budget, "
        "ensemble, exclude_models, folds, max_latency_ms, max_size_mb, max_trials, metric, "
        "models, preset, ray, search, seed.",
    ),
]

WRONG_TYPE = [
    (
        {"monitoring": {"alpha": "high"}},
        "monitoring.alpha = 'high' is not valid: Input should be a valid number, unable to "
        "parse string as a number. Set monitoring.alpha to a number (default: 0.01) in "
        "keizoku.yaml.",
    ),
    (
        {"retraining": {"window": {"since": "a month"}}},
        "retraining.window.since = 'a month' is not valid: Duration 'a month' is not a "
        "duration. Use a number of seconds or a number with a unit: 250ms, 90s, 5m, 1.5h, 7d, "
        "2w. Fix retraining.window.since (default: '30d') in keizoku.yaml.",
    ),
    (
        {"retraining": {"train": {"budget": "quick"}}},
        "retraining.train.budget = 'quick' is not valid: Duration 'quick' is not a duration. "
        "Use a number of seconds or a number with a unit: 250ms, 90s, 5m, 1.5h, 7d, 2w. Fix "
        "retraining.train.budget (default: '1m') in keizoku.yaml.",
    ),
    (
        {"fairness": {"max_mae_difference": [1]}},
        "fairness.max_mae_difference = [1] is not valid: Input should be a valid number. Set "
        "fairness.max_mae_difference to a number in keizoku.yaml.",
    ),
    (
        {"train": {"max_trials": 0}},
        "train.max_trials = 0 is not valid: Input should be greater than or equal to 1. Fix "
        "train.max_trials in keizoku.yaml.",
    ),
]


def write_spec(folder: Path, patch: dict[str, object]) -> Path:
    path = folder / "keizoku.yaml"
    path.write_text(yaml.safe_dump({**BASE, **patch}))
    return path


@pytest.mark.parametrize(("patch", "message"), MISSPELT + WRONG_TYPE)
def test_a_bad_key_in_any_section_is_one_line_naming_section_key_value_and_fix(
    tmp_path: Path, patch: dict[str, object], message: str
) -> None:
    with pytest.raises(UserInputError) as exc:
        load_spec(write_spec(tmp_path, patch))
    text = str(exc.value).replace(str(tmp_path / "keizoku.yaml"), "keizoku.yaml")
    assert text == f"keizoku.yaml: {message}"


@pytest.mark.parametrize(("patch", "message"), [MISSPELT[0], WRONG_TYPE[0], MISSPELT[2]])
def test_keizoku_train_exits_2_with_the_one_line_message(
    cli, tmp_path: Path, patch: dict[str, object], message: str
) -> None:  # type: ignore[no-untyped-def]
    write_spec(tmp_path, patch)
    res = cli("train", "--budget", "5s")
    assert res.code == 2, res.text
    assert f"keizoku.yaml: {message}" in res.text
    assert "Traceback" not in res.out + res.err
    assert "pydantic" not in res.text and "validation error" not in res.text


def test_section_parsers_return_the_typed_section_and_use_the_same_helper() -> None:
    spec = Spec.model_validate({**BASE, "monitoring": {"window": "2h"}})
    assert drift_config(spec.monitoring) is spec.monitoring
    assert drift_config({"window": "90m"}).window == 5400.0
    assert parse_policy(spec.retraining) is spec.retraining
    assert parse_policy({"check_every": "15m"}).check_every == 900.0
    assert parse_fairness(None).limits() == {}
    with pytest.raises(UserInputError) as exc:
        parse_policy({"monitor_windw": "1h"})
    assert str(exc.value).startswith(
        "keizoku.yaml: retraining.monitor_windw is not a known key (did you mean 'monitor_window'?)"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("90s", 90), ("5m", 300), ("1.5h", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_duration_accepts_milliseconds_to_weeks(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    spec = Spec.model_validate({**BASE, "retraining": {"triggers": {"every": text}}})
    assert spec.retraining.triggers.every == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5 parsecs", "-3s", "1y", "", "h"])
def test_duration_rejects_nonsense(text: str) -> None:
    with pytest.raises(UserInputError) as exc:
        spec_from_dict({**BASE, "monitoring": {"window": text}})
    assert "monitoring.window" in str(exc.value) and "is not a duration" in str(exc.value)


def test_init_writes_a_spec_that_loads_and_round_trips(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("init", str(PENGUINS), "--target", "species")
    assert res.code == 0, res.text
    spec, _ = load_spec(tmp_path / "keizoku.yaml")
    spec.save(tmp_path / "again.yaml")
    again, _ = load_spec(tmp_path / "again.yaml")
    assert again == spec and again.train.budget == 60.0


def test_retraining_frame_keeps_the_id_column_out_of_the_features(
    tmp_path: Path, keizoku_home: Path
) -> None:
    """Issue 10 item 7: retraining used the `rownames` id column as a feature."""
    from keizoku.data.schema import infer_schema
    from keizoku.project import train_project

    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=n)
    frame = pd.DataFrame({"rownames": np.arange(n), "x": x, "y": np.where(x > 0, "yes", "no")})
    frame.to_csv(tmp_path / "d.csv", index=False)
    spec = {**BASE, "target": "y", "data": {"path": "d.csv", "id_columns": ["rownames"]}}
    (tmp_path / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    schema = infer_schema(frame, "y", id_columns=["rownames"])
    schema.save(tmp_path / "schema.yaml")
    settings = {"models": ["linear"], "max_trials": 1, "preset": "fast", "ensemble": False}
    # A frame as retraining builds it: rows whose ids a plain inference would take as a feature.
    retrain_frame = pd.concat([frame, frame.assign(rownames=frame["rownames"] + n)])
    outcome = train_project(tmp_path / "keizoku.yaml", overrides=settings, frame=retrain_frame)
    features = [c.name for c in outcome.result.model.schema.features]
    assert features == ["x"]
    assert outcome.result.model.schema.column("rownames").role == "id"


DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("page", ["training.md", "monitoring.md", "lifecycle.md", "evaluation.md"])
def test_every_spec_example_in_the_docs_loads(page: str) -> None:
    text = (DOCS / page).read_text()
    blocks = [b.split("```")[0] for b in text.split("```yaml\n")[1:]]
    sections = [yaml.safe_load(b) for b in blocks]
    assert sections, f"no yaml example in docs/{page}"
    for section in sections:
        spec_from_dict({**BASE, **section})
