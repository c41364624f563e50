"""Schema inference on planted column kinds, and the target errors users hit."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keizoku.data.schema import Schema, Task, detect_task, infer_schema, infer_target
from keizoku.errors import DataError, KeizokuWarning, SchemaMismatchError, UserInputError


def planted(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row_id": np.arange(1, n + 1),
            "amount": rng.normal(100, 10, n),
            "grade": rng.integers(1, 5, n),
            "member": rng.choice(["yes", "no"], n),
            "city": rng.choice(["Osaka", "Kyoto", "Nara"], n),
            "signup": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
            "comment": [f"customer {i} wrote a rather long note about the order" for i in range(n)],
            "code": [f"X{i:05d}" for i in range(n)],
            "empty": [None] * n,
            "same": ["k"] * n,
            "churn": rng.choice(["stay", "leave"], n),
        }
    )


def test_kinds_and_roles_are_inferred() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = infer_schema(planted(), "churn")
    kinds = {c.name: (c.kind, c.role) for c in schema.columns}
    assert kinds == {
        "row_id": ("id", "id"),
        "amount": ("numeric", "feature"),
        "grade": ("categorical", "feature"),
        "member": ("boolean", "feature"),
        "city": ("categorical", "feature"),
        "signup": ("datetime", "feature"),
        "comment": ("text", "feature"),
        "code": ("id", "id"),
        "empty": ("numeric", "ignored"),
        "same": ("categorical", "ignored"),
        "churn": ("categorical", "target"),
    }
    assert schema.task == "binary" and schema.classes == ["leave", "stay"]
    messages = [str(w.message) for w in caught if issubclass(w.category, KeizokuWarning)]
    assert messages == ["Column 'empty' is missing in every row; it is ignored."]


def test_misspelled_target_suggests_the_closest_column() -> None:
    with pytest.raises(UserInputError) as exc:
        infer_schema(planted(), "Churn ")
    assert str(exc.value) == "Column 'Churn ' is not in the data; did you mean 'churn'?"


def test_target_with_one_class_is_refused() -> None:
    frame = planted().assign(churn="stay")
    with pytest.raises(DataError) as exc:
        infer_schema(frame, "churn", task="binary")
    assert str(exc.value) == (
        "Target 'churn' has only one class ('stay') in 200 rows: a classifier needs at least "
        "two. Check the filter or pick another target."
    )


def test_regression_target_that_is_not_numeric_is_refused() -> None:
    with pytest.raises(DataError) as exc:
        infer_schema(planted(), "city", task="regression")
    assert "Target 'city' is not numeric (for example 'Osaka'" in str(exc.value)
    assert "Use --task binary/multiclass" in str(exc.value)


@pytest.mark.parametrize(
    ("target", "task"),
    [("churn", None), ("grade", None), ("amount", None), ("grade", "regression")],
)
def test_the_target_alone_gives_the_task_and_classes_of_the_whole_schema(
    target: str, task: Task | None
) -> None:
    """What training reads from the data when the saved schema already has the columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(planted(), target, task=task)
    found = infer_target(planted(), target, task=task)
    assert found == (schema.task, schema.classes)


@pytest.mark.parametrize(
    ("target", "task", "declared"),
    [("Churn ", None, []), ("churn", None, ["rowid"]), ("city", "regression", ["row_id"])],
)
def test_the_target_alone_is_refused_as_the_whole_schema_is(
    target: str, task: Task | None, declared: list[str]
) -> None:
    with pytest.raises((UserInputError, DataError)) as whole:
        infer_schema(planted(), target, task=task, id_columns=declared)
    with pytest.raises(type(whole.value)) as alone:
        infer_target(planted(), target, task=task, declared=declared)
    assert str(alone.value) == str(whole.value)


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1] * 50, "binary"),
        ([1, 2, 3] * 40, "multiclass"),
        (list(range(26)) * 40, "multiclass"),
        (list(range(1, 27)) * 40, "multiclass"),
        (list(range(1, 30)) * 40 + [35], "regression"),
        ([1] + list(range(2, 25)) * 40, "regression"),
        (list(np.linspace(0, 1, 90)), "regression"),
        (["a", "b", "c"] * 5, "multiclass"),
    ],
)
def test_task_detection(values: list, task: str) -> None:
    assert detect_task(pd.Series(values)) == task


def test_schema_round_trips_through_yaml_and_checks_columns(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(planted(), "churn")
    schema.save(tmp_path / "schema.yaml")
    loaded = Schema.load(tmp_path / "schema.yaml")
    assert loaded == schema
    with pytest.raises(SchemaMismatchError) as exc:
        loaded.check_frame(planted().drop(columns=["amount", "city"]).assign(extra=1))
    assert str(exc.value) == (
        "The data lacks column(s) ['amount', 'city'] that the model was trained with. The data "
        "has column(s) the model never saw: ['extra']. Rename or add them so the columns match "
        "the training schema."
    )
