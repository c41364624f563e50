"""Images as inputs: a folder of class subfolders or a CSV of paths and labels, read into
one array, with limits on what a file may be.

``scan_folder`` lists ``DIR/<label>/<file>.png|jpg|jpeg`` as a frame of ``path`` and
``label``; ``read_paths_csv`` does the same from a CSV. ``load_image`` decodes one file
(bytes or a path) into a grayscale float array in [0, 1] of the wanted size, refusing a
file that is too big, not a PNG or JPEG, or corrupt with a one-line ``DataError`` that
names the file and the fix. ``image_stats`` gives the per-image numbers the monitor
tracks (size, brightness, contrast).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from keizoku.errors import DataError, UserInputError

__all__ = [
    "FORMATS",
    "ImageLimits",
    "image_stats",
    "has_colour",
    "image_size",
    "load_image",
    "load_images",
    "read_paths_csv",
    "scan_folder",
]

FORMATS = {"PNG", "JPEG"}  # what PIL must recognise; the suffix alone is not trusted
SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class ImageLimits:
    """What one image may be: at most ``max_bytes`` encoded, ``max_pixels`` decoded."""

    max_bytes: int = 5_000_000
    max_pixels: int = 4096 * 4096


def scan_folder(root: str | Path) -> pd.DataFrame:
    """``path`` and ``label`` of every PNG/JPEG in ``root``'s subfolders (label = folder)."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"Image folder '{root}' does not exist: give a folder of class "
                             "subfolders (DIR/<label>/<image>.png).")  # fmt: skip
    rows = [
        (str(p), sub.name)
        for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        for p in sorted(sub.iterdir())
        if p.suffix.lower() in SUFFIXES
    ]
    if not rows:
        raise UserInputError(
            f"Image folder '{root}' has no PNG or JPEG files in class subfolders: expected "
            f"{root}/<label>/<image>.png."
        )
    labels = {label for _, label in rows}
    if len(labels) < 2:
        raise UserInputError(
            f"Image folder '{root}' has one class ({labels.pop()}): a classifier needs at "
            "least two subfolders of images."
        )
    return pd.DataFrame(rows, columns=["path", "label"])


def read_paths_csv(
    csv: str | Path, path_column: str = "path", label_column: str = "label"
) -> pd.DataFrame:
    """``path`` and ``label`` from a CSV; relative paths are read from the CSV's folder."""
    csv = Path(csv)
    frame = pd.read_csv(csv)
    for col in (path_column, label_column):
        if col not in frame.columns:
            raise UserInputError(
                f"Image list '{csv}' has no column '{col}' (columns: {list(frame.columns)}): "
                f"name the image path and label columns."
            )
    paths = [str(p if Path(p).is_absolute() else csv.parent / p) for p in frame[path_column]]
    return pd.DataFrame({"path": paths, "label": frame[label_column].astype(str)})


def load_image(
    source: bytes | str | Path,
    size: tuple[int, int],
    name: str | None = None,
    limits: ImageLimits = ImageLimits(),
    colour: bool = False,
) -> np.ndarray:
    """One image as a ``size`` (height, width) grayscale float32 array in [0, 1], or with
    ``colour`` a (height, width, 3) RGB one."""
    from PIL import Image, UnidentifiedImageError

    label = name or (str(source) if not isinstance(source, bytes) else "the upload")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data:
        raise DataError(f"Image {label} is empty (0 bytes): send a PNG or JPEG file.")
    if len(data) > limits.max_bytes:
        raise DataError(
            f"Image {label} is {len(data):,} bytes, over the {limits.max_bytes:,}-byte limit: "
            "send a smaller image."
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in FORMATS:
                raise DataError(
                    f"Image {label} is {img.format or 'an unknown format'}, not PNG or JPEG: "
                    "convert it to PNG."
                )
            if img.width * img.height > limits.max_pixels:
                raise DataError(
                    f"Image {label} is {img.width}x{img.height} pixels, over the "
                    f"{limits.max_pixels:,}-pixel limit: send a smaller image."
                )
            pixels = img.convert("RGB" if colour else "L")
            if pixels.size != (size[1], size[0]):
                pixels = pixels.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(pixels, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"Image {label} is corrupt or not an image ({type(exc).__name__}): "
            "send a valid PNG or JPEG file."
        ) from exc


def load_images(paths: list[str], size: tuple[int, int], colour: bool = False) -> np.ndarray:
    """Every image of ``paths`` as one (n, height, width) array, (n, height, width, 3) with
    ``colour``."""
    if not paths:
        return np.zeros((0, *size, 3) if colour else (0, *size))
    return np.stack([load_image(p, size, colour=colour) for p in paths])


def image_size(source: bytes | str | Path) -> tuple[int, int]:
    """(width, height) of an image as sent, before any resizing (reads the header only)."""
    from PIL import Image

    stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")
    with stream, Image.open(stream) as img:
        return int(img.width), int(img.height)


def has_colour(paths: list[str]) -> bool:
    """Whether any of ``paths`` has pixels whose red, green and blue differ (a grey image
    saved as RGB is not colour)."""
    from PIL import Image

    for path in paths:
        with Image.open(path) as img:
            if img.mode in ("L", "LA", "1", "I", "I;16", "F"):
                continue
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
        if (
            np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8
            or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8
        ):
            return True
    return False


def image_stats(images: np.ndarray) -> pd.DataFrame:
    """Per image: brightness (mean), contrast (std) and the share of dark pixels."""
    flat = images.reshape(len(images), -1)
    return pd.DataFrame(
        {
            "brightness": flat.mean(axis=1),
            "contrast": flat.std(axis=1),
            "dark_share": (flat < 0.1).mean(axis=1),
        }
    )
