"""The training context and the one canonical form of categories and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keizoku.data.schema import Column
from keizoku.features.encoder import TabularEncoder
from keizoku.monitoring.reference import categorical_ref


def test_encoder_meets_booleans_in_any_spelling_on_one_code() -> None:
    """`_cat_key` left "True" and True apart; `canonical` makes them one category."""
    col = Column(name="flag", kind="categorical", dtype="str")
    enc = TabularEncoder([col], mode="ordinal").fit(pd.DataFrame({"flag": ["True", "False"] * 5}))
    from_csv = enc.transform(pd.DataFrame({"flag": ["True", "False"]}))
    from_json = enc.transform_records([{"flag": True}, {"flag": False}])
    np.testing.assert_array_equal(from_csv, from_json)
    assert not np.isnan(from_json).any() and from_json[0, 0] != from_json[1, 0]


def test_reference_levels_use_the_canonical_text() -> None:
    ref = categorical_ref(pd.Series([True, "True", " true", 3.0, "3"], dtype=object))
    assert ref.frequencies == {"true": 0.6, "3": 0.4}
