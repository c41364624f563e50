"""Datetime features in the graph: the date parts (year, month, day, day of the week,
hour) are integer arithmetic on the seconds of the wall-clock time, equal to keizoku's
encoder for dates around leap days, centuries, before 1970 and with a UTC offset; in
ordinal (trees) and one-hot (linear) encoders. The runner refuses a date that is not ISO
8601, as the REST API does."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from export_support import graph_session, need_onnx_extra
from keizoku.data.schema import infer_schema
from keizoku.export import TOLERANCE, export_onnx
from keizoku.export.runner import Bundle, RecordError
from keizoku.registry import load_model
from keizoku.registry.tracking import TrainingRun
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.search import run_search

need_onnx_extra()

EDGES = [
    "1900-02-28T23:59:59", "1900-03-01T00:00:00", "1969-12-31T23:00:00",
    "1970-01-01T00:00:00", "2000-02-29T12:30:00", "2024-02-29T05:00:00",
    "2024-03-01T06:00:00+09:00", "2099-12-31T23:59:59", "2100-03-01T01:00:00", None,
]  # fmt: skip


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = rng.integers(-25_000, 50_000, size=150)
    stamps = pd.to_datetime(days, unit="D") + pd.to_timedelta(rng.integers(0, 24, 150), "h")
    when = [s.isoformat() for s in stamps]
    naive = [e for e in EDGES if e is None or "+" not in e]  # training reads one zone
    when[: len(naive)] = naive
    x = rng.normal(size=150)
    target = ["yes" if (s.month > 6) ^ (v > 0.5) else "no" for s, v in zip(stamps, x, strict=True)]
    return pd.DataFrame({"when": when, "x": x, "target": target})


def fit_and_register(data: pd.DataFrame, family: str, root: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(data, "target")
        schema = schema.model_copy(update={"columns": [
            c.model_copy(update={"kind": "datetime", "dtype": "str"}) if c.name == "when" else c
            for c in schema.columns
        ]})  # fmt: skip
        cfg = TrainSpec(models=[family], max_trials=1, folds=2, search="grid", ensemble=False,
                        budget=600.0)  # fmt: skip
        model = run_search(TrainingData.build(data, schema), cfg).model
    schema_file = root / f"{family}-schema.yaml"
    model.schema.save(schema_file)
    with TrainingRun(f"dates-{family}") as run:
        version = run.register(model, {"schema": schema_file}, {})
    return f"dates-{family}:{version}"


@pytest.mark.parametrize("family", ["lightgbm", "linear"])
def test_datetime_parts_are_computed_in_the_graph_like_the_encoder(
    registry_home: Path, family: str, tmp_path: Path
) -> None:
    data = frame()
    ref = fit_and_register(data, family, registry_home.parent)
    result = export_onnx(ref, tmp_path / "bundle", data)
    assert result.parity.passed and result.parity.labels_equal == len(data)
    bundle = Bundle(tmp_path / "bundle")
    model = load_model(ref)
    # the date parts themselves: the encoder's columns for the edge dates, through ONNX
    member = model.members[0]
    records = [{"when": w, "x": 0.1} for w in EDGES]
    np.testing.assert_allclose(bundle.raw(records), model.predict_raw_records(records),
                               atol=TOLERANCE)  # fmt: skip
    assert member.encoder.mode == ("ordinal" if family == "lightgbm" else "onehot")
    with pytest.raises(RecordError, match="'when' = '31/01/2024'.*ISO 8601"):
        bundle.raw([{"when": "31/01/2024", "x": 0.1}])
    with pytest.raises(RecordError, match="'when' = 20240131.*date/time string"):
        bundle.raw([{"when": 20240131, "x": 0.1}])


def test_the_date_arithmetic_equals_pandas_over_four_centuries() -> None:
    from onnx import TensorProto

    from keizoku.export import runner
    from keizoku.export.graph import Graph, _date_parts

    g = Graph()
    out = _date_parts(g, "datetime", 1, onehot=False)
    session = graph_session(g, ("datetime", TensorProto.DOUBLE, 1), (out, TensorProto.DOUBLE, 5))
    rng = np.random.default_rng(1)
    seconds = rng.integers(-80 * 365 * 86400, 400 * 365 * 86400, size=5000)
    texts = [s.isoformat() for s in pd.to_datetime(seconds, unit="s")] + EDGES[:-1]
    got = session.run(None, {"datetime": np.array([[runner._seconds(t)] for t in texts])})[0]
    stamps = [pd.to_datetime(t) for t in texts]
    want = [[s.year, s.month, s.day, s.day_of_week, s.hour] for s in stamps]
    np.testing.assert_array_equal(got, np.array(want, dtype=float))
    missing = session.run(None, {"datetime": np.array([[np.nan]])})[0]
    assert np.isnan(missing).all()
