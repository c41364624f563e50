"""The fast path must equal the DataFrame path, for every column kind and encoder mode."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keizoku.data.schema import infer_schema
from keizoku.features.encoder import TabularEncoder


def mixed(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 5, n)
    amount[::7] = np.nan
    city = rng.choice(np.array(["Osaka", "Kyoto", "Nara", None], dtype=object), n)
    return pd.DataFrame(
        {
            "amount": amount,
            "grade": rng.integers(1, 4, n),
            "member": rng.choice(["yes", "no"], n),
            "city": city,
            "when": pd.date_range("2024-01-01", periods=n, freq="5h").astype(str),
            "note": rng.choice(
                ["late delivery again", "great service", "broken box on arrival"], n
            ),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.mark.parametrize("mode", ["ordinal", "onehot"])
def test_records_path_equals_frame_path_including_unseen_and_missing(mode: Any) -> None:
    train = mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, "y")
    enc = TabularEncoder(schema.features, mode=mode).fit(train)
    test = mixed(50, seed=1)
    test.loc[0, "city"] = "Tokyo"  # unseen category
    test.loc[1, "grade"] = 9  # unseen integer code
    test.loc[2, "when"] = None
    test.loc[3, "note"] = None
    from_frame = enc.transform(test)
    from_records = enc.transform_records(test.to_dict("records"))
    assert from_frame.shape == (50, enc.n_features_out_)
    np.testing.assert_allclose(from_frame, from_records, equal_nan=True)


def test_json_style_values_meet_the_same_codes() -> None:
    train = mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, "y")
    enc = TabularEncoder(schema.features, mode="onehot").fit(train)
    rec = train.iloc[0].to_dict()
    as_json = {**rec, "grade": float(rec["grade"]), "amount": str(rec["amount"])}
    np.testing.assert_allclose(enc.transform_records([rec]), enc.transform_records([as_json]))


def test_onehot_mode_imputes_and_scales_ordinal_mode_keeps_nan() -> None:
    train = mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, "y")
    onehot = TabularEncoder(schema.features, mode="onehot").fit(train).transform(train)
    ordinal = TabularEncoder(schema.features, mode="ordinal").fit(train).transform(train)
    assert not np.isnan(onehot).any()
    assert np.isnan(ordinal[:, 0]).sum() == train["amount"].isna().sum()
    names = TabularEncoder(schema.features, mode="onehot").fit(train).feature_names_out_
    assert "amount__missing" in names and "city=<missing>" in names


def test_fitted_encoder_pickles_and_scores_the_same() -> None:
    train = mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, "y")
    enc = TabularEncoder(schema.features).fit(train)
    enc.transform_records(train.head(2).to_dict("records"))  # builds the cached analyzer
    again = pickle.loads(pickle.dumps(enc))
    np.testing.assert_allclose(again.transform(train), enc.transform(train), equal_nan=True)


COLUMNS_OF_ONE_KIND_AND_MIXED = [
    pd.Series(["a", " a", "b", None, np.nan, "TRUE", "False"], dtype=object),
    pd.Series([3, np.int64(3), 4, None], dtype=object),
    pd.Series([1, True, 1.0, "1", np.True_, 0, False, None], dtype=object),  # mixed kinds
    pd.Series([1.0, 2.5, np.nan, -0.0, 3.0]),
    pd.Series([1.5, 2.0, np.float32(2.0), None], dtype=object),
    pd.Series([True, False, None], dtype="boolean"),
    pd.Series(["x", pd.NA, "y"], dtype="string"),
    pd.Series([pd.NaT, "2024-01-01", pd.NA], dtype=object),
    pd.Series([7, 8, 7], dtype="int64"),
    pd.Series([], dtype=object),
]


@pytest.mark.parametrize("column", COLUMNS_OF_ONE_KIND_AND_MIXED)
def test_canonical_texts_equals_canonical_value_by_value(column: pd.Series) -> None:
    from keizoku.data.labels import canonical, canonical_texts, is_missing

    expected = [None if is_missing(v) else canonical(v) for v in column.tolist()]
    assert canonical_texts(column).tolist() == expected


@pytest.mark.parametrize("column", COLUMNS_OF_ONE_KIND_AND_MIXED)
def test_canonical_codes_point_each_row_at_its_text(column: pd.Series) -> None:
    """What the encoder looks up: each row's text through its code, -1 for a missing value."""
    from keizoku.data.labels import canonical, canonical_codes, is_missing

    codes, texts = canonical_codes(column)
    assert len(codes) == len(column)
    for code, value in zip(codes.tolist(), column.tolist(), strict=True):
        assert (code == -1) if is_missing(value) else (texts[code] == canonical(value))


@pytest.mark.parametrize(
    "column",
    [
        *COLUMNS_OF_ONE_KIND_AND_MIXED,
        pd.Series(["b", "a", " a", "c", "b", "a", None, "c", "d"] * 3, dtype=object),  # ties
        pd.Series(np.random.default_rng(0).integers(0, 40, 500)),  # past 30 levels
    ],
)
def test_canonical_counts_are_the_value_counts_of_the_texts(column: pd.Series) -> None:
    """The encoder's levels and the drift reference's frequencies, in the same order."""
    from keizoku.data.labels import canonical_counts, canonical_texts

    expected = canonical_texts(column).dropna().value_counts()
    counts = canonical_counts(column)
    assert list(counts.items()) == list(zip(expected.index, expected.tolist(), strict=True))


def test_codes_of_a_column_of_one_kind_are_one_per_distinct_value() -> None:
    from keizoku.data.labels import canonical_codes

    codes, texts = canonical_codes(pd.Series(["b", "a", None, "b", "a"] * 1000, dtype=object))
    assert texts == ["b", "a"] and codes[:5].tolist() == [0, 1, -1, 0, 1]


def test_frame_path_equals_records_path_on_mixed_kinds_in_one_column() -> None:
    """True and 1 are different categories even though they are equal keys in Python."""
    train = pd.DataFrame(
        {
            "flag": pd.Series([True, 1, "1", False, 0, None] * 5, dtype=object),
            "size": pd.Series([1.0, 2.0, 2.5, np.nan, 1.0, 3.0] * 5),
            "y": [0, 1] * 15,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(train, "y")
    for col in schema.features:
        col.kind = "categorical"
    for mode in ("ordinal", "onehot"):
        enc = TabularEncoder(schema.features, mode=mode, max_categories=3).fit(train)
        test = train.head(6).copy()
        test.loc[5, "flag"] = "unseen"
        np.testing.assert_allclose(
            enc.transform(test), enc.transform_records(test.to_dict("records")), equal_nan=True
        )
