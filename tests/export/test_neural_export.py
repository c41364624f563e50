"""The PyTorch MLP in the graph: embeddings, linear layers with batch norm folded in and
ReLU written as ONNX ops from its weights; the parity check allows 1e-4 for it (PyTorch
computes in float32), and the bundle scores like the registered model, missing numbers,
unseen and integer-coded categories included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export_support import Models, need_onnx_extra
from keizoku.export import export_onnx
from keizoku.export.bundle import NEURAL_TOLERANCE
from keizoku.export.neural import CLIP
from keizoku.export.runner import Bundle
from keizoku.registry import load_model
from kzsupport import need_module

need_onnx_extra()
need_module("torch", reason="the MLP is the optional torch family (keizoku[torch])")


@pytest.fixture(scope="module")
def models(registry_home: Path) -> Models:
    return Models(registry_home.parent, prefix="mlp")


def test_the_graph_clips_as_the_network_does() -> None:
    from keizoku.deep.mlp import CLIP as NETWORK_CLIP

    assert CLIP == NETWORK_CLIP


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_mlp_exports_within_the_neural_tolerance(
    models: Models, task: str, tmp_path: Path
) -> None:
    ref = models.ref(task, "torch_mlp")
    frame = models.frame(task)
    result = export_onnx(ref, tmp_path / "bundle", frame)
    p = result.parity
    assert p.passed and p.tolerance == NEURAL_TOLERANCE and p.labels_equal == len(frame)
    model = load_model(ref)
    rows = frame.drop(columns=["target"]).head(40).to_dict(orient="records")
    records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
               for r in rows]  # fmt: skip
    records.append({**records[0], "band": "huge", "grade": 9})  # unseen: code 1
    bundle = Bundle(tmp_path / "bundle")
    ours = bundle.raw(records, allow_unseen=True)
    np.testing.assert_allclose(ours, model.predict_raw_records(records),
                               atol=NEURAL_TOLERANCE, rtol=NEURAL_TOLERANCE)  # fmt: skip
