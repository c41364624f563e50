"""An image project's data and model: what ``keizoku init`` infers from a folder of class
subfolders or a CSV of paths and labels, and ``ImageModel``, the registered classifier.

``infer_images`` returns the ``images:`` section (or None when ``data`` is not images);
``image_table`` lists a project's images as ``path`` and ``label``. ``ImageModel`` wraps a
fitted ``ImageCNN`` with its schema and image size; it satisfies
:class:`keizoku.registry.servable.ServableModel` so the registry stores, hashes and loads it
like any model. Its scoring entry point is :meth:`ImageModel.predict_images` (decoded
arrays in); ``score_frame`` scores a table of image paths (``keizoku predict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.data.images import (
    SUFFIXES,
    has_colour,
    image_stats,
    load_images,
    read_paths_csv,
    scan_folder,
)
from keizoku.data.schema import Column, Schema, Task
from keizoku.deep.spec import ImagesSpec
from keizoku.errors import DataError, UserInputError

__all__ = [
    "EMBED_PCS",
    "MAX_SIDE",
    "ImageModel",
    "fit_embedding_pca",
    "image_schema",
    "image_table",
    "infer_images",
]

MAX_SIDE = 64  # init caps the inferred image size: a small CNN trained from scratch


def _is_image_list(path: Path) -> str | None:
    """The column of a CSV whose values all name PNG/JPEG files, if there is one."""
    if path.suffix.lower() not in (".csv", ".tsv") or not path.is_file():
        return None
    try:
        head = pd.read_csv(path, nrows=50, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except ValueError:  # empty, undecodable, ragged: not a list of images; the table reader
        return None  # that follows names the problem
    for col in head.columns:
        values = head[col].dropna().astype(str)
        if len(values) and values.map(lambda v: Path(v).suffix.lower() in SUFFIXES).all():
            return str(col)
    return None


def image_table(data: str | Path, images: ImagesSpec, target: str) -> pd.DataFrame:
    """``path`` and ``label`` of every image of the project."""
    if images.source == "folder":
        return scan_folder(data)
    return read_paths_csv(data, images.path_column, target)


def infer_images(data: str, target: str) -> ImagesSpec | None:
    """The ``images:`` section for ``data`` (a folder of class subfolders, or a CSV with a
    column of image paths), or None when ``data`` is not images."""
    from PIL import Image

    path = Path(data)
    if path.is_dir():
        spec = ImagesSpec(source="folder")
    else:
        column = _is_image_list(path)
        if column is None:
            return None
        spec = ImagesSpec(source="csv", path_column=column)
    table = image_table(path, spec, target)
    colour = has_colour(table["path"].sample(min(len(table), 20), random_state=0).tolist())
    try:
        with Image.open(table["path"].iloc[0]) as first:
            width, height = first.size
    except OSError as exc:
        raise DataError(
            f"Image {table['path'].iloc[0]} cannot be read ({type(exc).__name__}): "
            "fix or remove it, then rerun keizoku init."
        ) from exc
    counts = table["label"].value_counts().sort_index()
    return spec.model_copy(
        update={
            "size": (min(height, MAX_SIDE), min(width, MAX_SIDE)),
            "colour": colour,
            "classes": [str(c) for c in counts.index],
            "counts": {str(c): int(n) for c, n in counts.items()},
        }
    )


def image_schema(images: ImagesSpec, target: str) -> Schema:
    """The schema of an image project: the path column (the input) and the label."""
    task: Task = "binary" if len(images.classes) == 2 else "multiclass"
    columns = [
        Column(name=images.path_column, kind="text", role="feature", dtype="str",
               note=f"image path ({images.size[0]}x{images.size[1]} "
                    f"{'RGB' if images.colour else 'grayscale'})"),
        Column(name=target, kind="categorical", role="target", dtype="str"),
    ]  # fmt: skip
    return Schema(columns=columns, target=target, task=task, classes=list(images.classes))


EMBED_PCS = 4  # the penultimate layer's drift is watched on its first principal components


def fit_embedding_pca(embedding: np.ndarray, k: int = EMBED_PCS) -> dict[str, list[Any]]:
    """The mean and first ``k`` principal axes of the training images' embeddings."""
    mean = embedding.mean(axis=0)
    _, _, axes = np.linalg.svd(embedding - mean, full_matrices=False)
    return {"mean": mean.tolist(), "components": axes[:k].tolist()}


class ImageModel:
    """A fitted ``ImageCNN`` with its schema, image size and how it was trained."""

    def __init__(self, schema: Schema, size: tuple[int, int], cnn: Any, info: dict[str, Any]):
        self._schema = schema
        self.size = (int(size[0]), int(size[1]))
        self.cnn = cnn
        self._info = info

    @property
    def colour(self) -> bool:
        """Whether the CNN reads RGB (three channels) rather than grayscale."""
        return int(self.cnn.arch_.get("in_channels", 1)) == 3

    # --- what the registry and the lifecycle read (ServableModel)
    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def task(self) -> str:
        return str(self._schema.task)

    @property
    def classes(self) -> list[Any] | None:
        return list(self._schema.classes or [])

    @property
    def metric(self) -> str:
        return "accuracy"

    @property
    def members(self) -> Sequence[Any]:
        return ()

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self._schema.columns if c.role == "feature"]

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    def _refuse(self, *_: Any) -> Any:
        raise UserInputError(
            "This is an image model: send images (POST /v1/models/NAME/predict-image, or "
            f"`keizoku predict` on a CSV with a '{self.feature_names[0]}' column of image paths; "
            "explain one with `keizoku explain NAME --image FILE`)."
        )

    predict_raw = predict_raw_records = predict_records = _refuse

    def labels(self, raw: np.ndarray) -> list[Any]:
        return [self.cnn.classes_[i] for i in np.asarray(raw).argmax(axis=1)]

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        return list(self.score_frame(frame)["prediction"])

    # --- images
    def predict_images(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (n × classes, in ``classes`` order) of decoded images."""
        return np.asarray(self.cnn.predict_proba(np.asarray(images, dtype=np.float32)))

    def score_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and the penultimate layer of decoded images, from one forward
        pass (the serving route: the answer, and the embedding the log keeps)."""
        proba, embedding = self.cnn.forward_both(np.asarray(images, dtype=np.float32))
        return np.asarray(proba), np.asarray(embedding)

    def explain_images(self, images: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        """Each pixel's attribution (n × height × width: integrated gradients of the log-odds)
        toward class code ``target`` (default: the predicted class); ``ImageCNN.attribute``."""
        return np.asarray(self.cnn.attribute(np.asarray(images, dtype=np.float32), target))

    def image_features(
        self,
        images: np.ndarray,
        sizes: list[tuple[int, int]],
        embedding: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """What the monitor compares per image: brightness, contrast, dark share, the size as
        sent (``width``, ``height``) and the penultimate layer's first principal components
        (``emb_pc1 …``, axes fitted on the training images; absent for models trained before).
        ``embedding``: the images' penultimate layer when the caller has it already
        (``score_images``); otherwise the CNN computes it."""
        frame = image_stats(images)
        frame["width"] = [float(w) for w, _ in sizes]
        frame["height"] = [float(h) for _, h in sizes]
        pca = self._info.get("embedding_pca")
        if pca:
            if embedding is None:
                embedding = self.cnn.embed(np.asarray(images, dtype=np.float32))
            centred = np.asarray(embedding) - np.asarray(pca["mean"])
            scores = centred @ np.asarray(pca["components"]).T
            for j in range(scores.shape[1]):
                frame[f"emb_pc{j + 1}"] = scores[:, j]
        return frame

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (a column of image paths) plus ``prediction`` and ``proba_<class>``."""
        column = self.feature_names[0]
        if column not in frame.columns:
            raise DataError(
                f"The table has no column '{column}' of image paths (columns: "
                f"{list(frame.columns)}): add it, one PNG/JPEG path per row."
            )
        paths = [str(p) for p in frame[column]]
        proba = self.predict_images(load_images(paths, self.size, self.colour))
        out = frame.copy()
        out["prediction"] = self.labels(proba)
        for j, c in enumerate(self.cnn.classes_):
            out[f"proba_{c}"] = proba[:, j]
        return out
