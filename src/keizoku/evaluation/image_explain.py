"""Explanations of an image model: which pixels made the CNN say what it said.

The attribution is integrated gradients of the explained class's log-odds against the
other classes (``ImageCNN.attribute``: 16 points on the path from a black image, in
torch, no new dependency). Positive values push toward the class, negative ones away from
it, and a map adds up to the log-odds on the image minus those on a black image, as a
table's contributions add up to its output. Plain gradient × input (one backward pass)
and occlusion (one forward pass per masked patch, hundreds per 64x64 image) were the
other candidates; decision 20 (s7) says what was measured.

- ``explain_images``: one answer per image (``keizoku explain --image``,
  ``POST /v1/models/NAME/explain-image``): the prediction, the attribution map and where
  its mass lies (``focus``).
- ``attribution_evidence``: what ``keizoku report`` shows, computed at training and saved
  with the version as ``image_explanations.json``: per class, the mean absolute attribution
  over that class's images (the global view), and a few hold-out images per class with
  their maps: the most confident right answers and the most confident wrong ones.

Maps are saved divided by their largest absolute value (``scale`` keeps it), rounded to
3 decimals: a 64x64 map is about 20 kB of JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "IMAGE_EXPLANATIONS",
    "METHOD",
    "attribution_evidence",
    "explain_images",
    "focus",
    "normalised",
]

IMAGE_EXPLANATIONS = "image_explanations.json"
METHOD = (
    "integrated gradients of the class's log-odds from a black image (16 steps), summed "
    "over colour channels"
)
TOP_SHARE = 0.1  # focus: the share of |attribution| held by the top 10 % of pixels
PER_CLASS_GLOBAL = 50  # images per class averaged in the global view
RIGHT, WRONG = 2, 2  # hold-out examples per true class


def normalised(values: np.ndarray) -> tuple[list[Any], float]:
    """``values`` divided by their largest absolute value, rounded to 3 decimals; the scale."""
    arr = np.asarray(values, dtype=float)
    scale = float(np.abs(arr).max()) if arr.size else 0.0
    shown = arr / scale if scale > 0 else arr
    return np.round(shown, 3).tolist(), scale


def focus(attribution: np.ndarray) -> dict[str, Any]:
    """Where the evidence for the class lies: the share of a map's positive attribution held
    by its top 10 % of pixels, and the centre of those pixels' mass (row, column; 0 is the
    top left pixel). Negative attribution (what argues against the class) is left out, so
    a region that pushes away does not pull the centre toward it."""
    mass = np.clip(np.asarray(attribution, dtype=float), 0, None)
    total = float(mass.sum())
    if total <= 0:
        return {"top_share": None, "centre": None}
    k = max(1, int(round(TOP_SHARE * mass.size)))
    top = np.zeros(mass.size, dtype=bool)
    top[np.argsort(mass.ravel())[::-1][:k]] = True
    kept = np.where(top.reshape(mass.shape), mass, 0.0)
    rows, cols = np.indices(mass.shape)
    centre = [float((rows * kept).sum() / kept.sum()), float((cols * kept).sum() / kept.sum())]
    return {"top_share": round(float(kept.sum() / total), 4),
            "centre": [round(c, 2) for c in centre]}  # fmt: skip


def explain_images(model: Any, images: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Per image: the prediction, its probabilities and the attribution toward that class;
    ``log_odds`` of that class, and ``total``, the map's sum: the log-odds minus those on a
    black image (``black_log_odds``)."""
    proba = np.asarray(model.predict_images(images))
    codes = proba.argmax(axis=1)
    maps = np.asarray(model.explain_images(images, codes))
    odds = model.cnn.log_odds(images, codes)
    black = model.cnn.log_odds(np.zeros_like(images), codes)
    classes = [str(c) for c in model.cnn.classes_]
    out = []
    for i, (name, row, code, amap) in enumerate(zip(names, proba, codes, maps, strict=True)):
        shown, scale = normalised(amap)
        out.append({
            "name": name,
            "prediction": classes[int(code)],
            "probabilities": {c: float(p) for c, p in zip(classes, row, strict=True)},
            "explained_class": classes[int(code)],
            "attribution": shown,
            "scale": scale,
            "focus": focus(amap),
            "log_odds": float(odds[i]),
            "black_log_odds": float(black[i]),
            "total": float(amap.sum()),
        })  # fmt: skip
    return out


def _pixels(image: np.ndarray) -> list[Any]:
    return list(np.round(np.asarray(image, dtype=float), 3).tolist())


def _global(model: Any, images: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    classes = [str(c) for c in model.cnn.classes_]
    out = []
    for code, label in enumerate(classes):
        idx = np.flatnonzero(labels == label)[:PER_CLASS_GLOBAL]
        if not len(idx):
            continue
        mean = np.abs(model.explain_images(images[idx], np.full(len(idx), code))).mean(axis=0)
        shown, scale = normalised(mean)
        out.append({"class": label, "n": int(len(idx)), "focus": focus(mean),
                    "mean_image": _pixels(images[idx].mean(axis=0)),
                    "mean_abs_attribution": shown, "scale": scale})  # fmt: skip
    return out


def _examples(
    model: Any, images: np.ndarray, labels: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    classes = [str(c) for c in model.cnn.classes_]
    proba = np.asarray(model.predict_images(images)) if len(images) else np.zeros((0, 1))
    pred, conf = proba.argmax(axis=1), proba.max(axis=1)
    chosen: list[tuple[int, str]] = []
    for label in classes:
        mine = np.flatnonzero(labels == label)
        right = mine[np.asarray([classes[p] for p in pred[mine]]) == label] if len(mine) else mine
        wrong = np.setdiff1d(mine, right)
        chosen += [(int(i), "right") for i in right[np.argsort(-conf[right])][:RIGHT]]
        chosen += [(int(i), "wrong") for i in wrong[np.argsort(-conf[wrong])][:WRONG]]
    if not chosen:
        return []
    idx = np.asarray([i for i, _ in chosen])
    maps = model.explain_images(images[idx], pred[idx])
    out = []
    for (i, kind), amap in zip(chosen, maps, strict=True):
        shown, scale = normalised(amap)
        out.append({"name": names[i], "kind": kind, "true": str(labels[i]),
                    "predicted": classes[int(pred[i])], "confidence": float(conf[i]),
                    "image": _pixels(images[i]), "attribution": shown, "scale": scale,
                    "focus": focus(amap)})  # fmt: skip
    return out


def attribution_evidence(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    held: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    """``image_explanations.json``: the global view per class (over every image of the
    project, at most ``PER_CLASS_GLOBAL`` per class) and hold-out examples per class."""
    labels = np.asarray(labels).astype(str)
    held_names = [n for n, h in zip(names, held, strict=True) if h]
    return {
        "method": METHOD,
        "classes": _global(model, images, labels),
        "examples": _examples(model, images[held], labels[held], held_names),
        "examples_source": "hold-out images (never trained on)",
    }
