"""A registered version served from its verified ONNX bundle (``keizoku serve --runtime onnx``).

:func:`load_onnx` finds the bundle ``keizoku export`` recorded on the version (the tag
``keizoku.export.onnx``: its folder and the sha256 of its manifest), checks the manifest's
hash against the tag and every file against the manifest, and returns an :class:`OnnxModel`:
a :class:`~keizoku.registry.servable.ServableModel` whose scores come from onnxruntime. The
schema, classes and members (what validation, the prediction log and explanations read)
are the registered version's, so the rest of the server is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keizoku.errors import IntegrityError, NotFoundError, UserInputError, require_extra
from keizoku.export.image import is_image_model
from keizoku.home import sha256_file
from keizoku.registry import models as registry
from keizoku.registry.servable import ServableMember, ServableModel

if TYPE_CHECKING:
    import pandas as pd

    from keizoku.data.schema import Schema
    from keizoku.export.runner import Bundle

__all__ = ["OnnxModel", "load_onnx"]

TAG = "keizoku.export.onnx"


class OnnxModel:
    """``model``'s description with ``bundle``'s scores (see the module)."""

    runtime = "onnx"

    def __init__(self, model: ServableModel, bundle: Bundle) -> None:
        self._model = model
        self.bundle = bundle

    @property
    def schema(self) -> Schema:
        return self._model.schema

    @property
    def task(self) -> str:
        return self._model.task

    @property
    def classes(self) -> list[Any] | None:
        return self._model.classes

    @property
    def metric(self) -> str:
        return self._model.metric

    @property
    def members(self) -> Sequence[ServableMember]:
        return self._model.members

    @property
    def feature_names(self) -> list[str]:
        return self._model.feature_names

    @property
    def info(self) -> dict[str, Any]:
        return {**self._model.info, "runtime": "onnx", "bundle": str(self.bundle.folder)}

    def predict_raw_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The graph's probabilities (n×k) or values (n) for records the server validated."""
        out = self.bundle.run(self.bundle.feeds(records))
        return np.asarray(out, dtype=np.float64)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        from keizoku.export.bundle import records_of

        return self.predict_raw_records(records_of(frame, self.feature_names))

    def labels(self, raw: np.ndarray) -> list[Any]:
        return self._model.labels(raw)

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        return self.labels(self.predict_raw(frame))

    def predict_records(self, records: list[dict[str, Any]]) -> list[Any]:
        return self.labels(self.predict_raw_records(records))

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        raw = self.predict_raw(frame)
        out = frame.copy()
        out["prediction"] = self.labels(raw)
        if self.task != "regression":
            for j, cls in enumerate(self.classes or []):
                out[f"proba_{cls}"] = raw[:, j]
        return out


def load_onnx(name: str, version: int) -> OnnxModel:
    """``name:version`` backed by its verified ONNX bundle; NotFoundError when it has none,
    IntegrityError when the bundle's files are not the ones exported."""
    require_extra("onnxruntime", "onnx")
    from keizoku.export.runner import Bundle, BundleError

    ref = f"{name}:{version}"
    model = registry.load_model(ref)
    if is_image_model(model):
        raise UserInputError(
            f"{ref} is an image model: keizoku serve --runtime onnx serves tabular models "
            "only (the image route scores with PyTorch). Serve it without --runtime onnx, "
            "or run its exported bundle's runner (python -m runner IMAGE.npy)."
        )
    raw = registry.get_version(ref).tags.get(TAG)
    summary = json.loads(raw) if raw else {}
    if not summary.get("verified") or not summary.get("folder"):
        raise NotFoundError(
            f"{ref} has no verified ONNX export to serve with --runtime onnx: run "
            f"`keizoku export {ref} --format onnx -o DIR` (or serve without --runtime onnx)."
        )
    folder = Path(summary["folder"])
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise NotFoundError(
            f"The ONNX bundle of {ref} is gone from {folder} (moved or deleted): export it "
            f"again with `keizoku export {ref} --format onnx -o DIR`."
        )
    actual = sha256_file(str(manifest))
    if actual != summary.get("manifest_sha256"):
        raise IntegrityError(
            f"Refusing the ONNX bundle of {ref} in {folder}: its manifest.json has sha256 "
            f"{actual[:12]}…, the export recorded {str(summary.get('manifest_sha256'))[:12]}…. "
            f"Export it again with `keizoku export {ref} --format onnx -o DIR`."
        )
    try:
        bundle = Bundle(folder)
    except BundleError as exc:
        raise IntegrityError(f"{exc} (serving {ref} with --runtime onnx)") from exc
    return OnnxModel(model, bundle)
