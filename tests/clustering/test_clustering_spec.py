"""The clustering: section and the target rule of the spec: one-line errors."""

from __future__ import annotations

import pytest

from keizoku.errors import UserInputError
from keizoku.spec import spec_from_dict


def test_a_clustering_spec_needs_no_target():
    spec = spec_from_dict({"project": "p", "task": "clustering", "clustering": {"k_max": 5}})
    assert spec.target == "" and spec.clustering.k_max == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"project": "p"}, "target is required"),
        ({"project": "p", "task": "clustering", "target": "y"}, "takes no target"),
        (
            {"project": "p", "task": "clustering", "clustering": {"k_min": 6, "k_max": 3}},
            "clustering = .* k_min 6 is above k_max 3",
        ),
        (
            {"project": "p", "task": "clustering", "clustering": {"algorithms": ["dbscan"]}},
            r"clustering.algorithms\[0\] = 'dbscan' is not valid",
        ),
        (
            {"project": "p", "task": "clustering", "clustering": {"k_maxx": 3}},
            "did you mean 'k_max'",
        ),
    ],
)
def test_bad_specs_say_what_to_fix(raw: dict[str, object], message: str):
    with pytest.raises(UserInputError, match=message) as info:
        spec_from_dict(raw)
    assert "\n" not in str(info.value)
