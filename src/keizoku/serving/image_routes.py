"""REST route: ``POST /v1/models/{name}/predict-image`` → the class of each uploaded image.

``name`` is ``NAME``, ``NAME@alias`` or ``NAME:version`` (default: the champion); inside
``keizoku serve`` ``NAME`` must be a model the server serves, and an image model. Two bodies:

- ``multipart/form-data``: one or more file parts (``curl -F image=@cat.png ...``);
- ``application/json``: ``{"images": [{"name": "cat.png", "data": "<base64>"}, ...]}``.

Limits, each answered with the file or field it is about: a body over
``MAX_IMAGE_BODY`` or one image over ``ImageLimits.max_bytes`` → 413; an image that is
not PNG or JPEG (by its first bytes, not its name) → 415; an empty or corrupt image, bad
base64, no image at all → 422. Response: ``model``, ``version`` and one object per image
(``name``, ``prediction``, ``probabilities``, ``request_id``). Each is written to the
prediction log with the image's features as inputs (``ImageModel.image_features``:
statistics, size as sent, the embedding's principal components), so ``keizoku feedback``
can attach its true label to the ``request_id``.

``POST /v1/models/{name}/explain-image`` takes the same bodies and limits and answers, per
image, the prediction and each pixel's attribution toward it (``explain_images_ref``).

One forward pass per request gives both the probabilities and the penultimate layer the
log keeps (``ImageModel.score_images``); the CNN is not run again for the log.

Auth and errors: ``keizoku.serving.boundary``, as for ``/predict``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from keizoku.data.images import ImageLimits, image_size, load_image
from keizoku.errors import DataError, UserInputError
from keizoku.prediction import Prediction
from keizoku.registry.refs import parse_ref
from keizoku.serving.boundary import (
    ErrorBody,
    KeizokuRoute,
    PredictCaller,
    body_doc,
    errors_doc,
    json_response,
    read_body,
    served_name,
)
from keizoku.serving.fastpath import PayloadTooLarge, parse_body

__all__ = [
    "MAX_IMAGE_BODY",
    "ImageRequest",
    "Scored",
    "UnsupportedImage",
    "check_image",
    "explain_images_ref",
    "router",
    "score_images",
]

router = APIRouter(tags=["images"], route_class=KeizokuRoute)

LIMITS = ImageLimits()
MAX_IMAGE_BODY = 4 * LIMITS.max_bytes  # a few images per request, base64 included
MAX_IMAGES = 64
UNSUPPORTED = "an image that is not PNG or JPEG, or a body neither multipart nor JSON"
MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


class UnsupportedImage(DataError):
    """An upload that is not a PNG or JPEG (or a body that is neither multipart nor JSON)."""

    code = "unsupported_media_type"
    http_status = 415


class ImageItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=255)
    data: str = Field(min_length=1, description="the image file, base64-encoded")


class ImageRequest(BaseModel):
    """Images as base64 in JSON (or send them as multipart/form-data file parts)."""

    model_config = ConfigDict(extra="forbid")
    images: list[ImageItem] = Field(min_length=1, max_length=MAX_IMAGES)


def _multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise DataError("The multipart body has no parts: send each image as a file part.")
    files = []
    for i, part in enumerate(message.iter_parts()):
        name = part.get_filename() or part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        files.append((str(name or f"part {i}"), payload if isinstance(payload, bytes) else b""))
    return files


def _from_json(body: bytes) -> list[tuple[str, bytes]]:
    from pydantic import ValidationError as PydanticValidationError

    from keizoku.errors import ValidationError

    try:
        parsed = ImageRequest.model_validate(parse_body(body))
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise ValidationError(
            f'Field \'{where}\': {first["msg"]}. Send {{"images": [{{"name": "a.png", '
            '"data": "<base64>"}]}.',
            details=[{"loc": list(first["loc"]), "msg": first["msg"]}],
        ) from exc
    files = []
    for i, item in enumerate(parsed.images):
        try:
            data = base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DataError(
                f"Field 'images.{i}.data' ({item.name or 'unnamed'}) is not valid base64: "
                "encode the image file's bytes with base64."
            ) from exc
        files.append((item.name or f"images.{i}", data))
    return files


def check_image(name: str, data: bytes) -> None:
    """413 for an image over the limit, 415 for one that is not PNG or JPEG."""
    if len(data) > LIMITS.max_bytes:
        raise PayloadTooLarge(
            f"Image {name} is {len(data):,} bytes, over the {LIMITS.max_bytes:,}-byte limit: "
            "send a smaller image."
        )
    if data and not any(data.startswith(magic) for magic, _ in MAGIC):
        raise UnsupportedImage(
            f"Image {name} is not a PNG or JPEG (by its first bytes): convert it to PNG."
        )


async def read_images(request: Request) -> list[tuple[str, bytes]]:
    """(name, bytes) of each image in the request, checked against the limits."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json"):
        raise UnsupportedImage(
            f"Content-Type '{kind or 'none'}' is not accepted: send multipart/form-data "
            '(file parts) or application/json ({"images": [{"name", "data"}]}).'
        )
    body = await read_body(request, limit=MAX_IMAGE_BODY)
    files = _multipart(body, content_type) if kind.startswith("multipart") else _from_json(body)
    if not files:
        raise DataError("The request has no image: send at least one file part or image.")
    if len(files) > MAX_IMAGES:
        raise PayloadTooLarge(f"{len(files)} images in one request; the limit is {MAX_IMAGES}.")
    for name, data in files:
        check_image(name, data)
    return files


@dataclass
class Scored:
    """One request's images through the model: one forward pass gives both arrays."""

    name: str
    version: int
    model: Any
    images: np.ndarray
    proba: np.ndarray  # n × classes
    embedding: np.ndarray  # n × hidden: the penultimate layer, for the prediction log


def image_model(ref: str) -> tuple[str, int, Any]:
    """(name, version, model) of ``ref``; a table model is a 422 naming the other route."""
    from keizoku.registry.models import load_model, resolve

    name, version = resolve(parse_ref(ref))
    model: Any = load_model(f"{name}:{version}")
    if not hasattr(model, "predict_images"):
        raise UserInputError(
            f"{name}:{version} is a {model.task} model on a table, not an image model: use "
            f"POST /v1/models/{name}/predict."
        )
    return name, version, model


def decode(model: Any, files: list[tuple[str, bytes]]) -> np.ndarray:
    """The images of ``files`` decoded at the model's size and colour (one-line 4xx errors)."""
    return np.stack(
        [load_image(data, model.size, name=n, limits=LIMITS, colour=model.colour)
         for n, data in files]
    )  # fmt: skip


def score_images(ref: str, files: list[tuple[str, bytes]]) -> Scored:
    """``files`` through model ``ref``: probabilities and embedding from one forward pass."""
    name, version, model = image_model(ref)
    images = decode(model, files)
    proba, embedding = model.score_images(images)
    return Scored(name, version, model, images, proba, embedding)


def explain_images_ref(ref: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Why model ``ref`` answers what it does for each image (``keizoku explain --image``
    and ``POST /v1/models/{name}/explain-image``; ``keizoku.evaluation.image_explain``).
    ``files`` are already checked (``read_images`` on the route, ``check_image`` in the CLI)."""
    from keizoku.evaluation.image_explain import METHOD, explain_images

    name, version, model = image_model(ref)
    explained = explain_images(model, decode(model, files), [file for file, _ in files])
    return {"model": name, "version": version, "method": METHOD, "explanations": explained}


def _log(request: Request, scored: Scored, files: list[tuple[str, bytes]],
         preds: list[Prediction], latency_ms: float) -> None:  # fmt: skip
    state = getattr(request.app.state, "keizoku", None)
    log = getattr(state, "log", None)
    if log is None:
        return
    ts = time.time()
    sizes = [image_size(data) for _, data in files]
    features = scored.model.image_features(scored.images, sizes, scored.embedding)
    for (file, _), pred, row in zip(files, preds, features.to_dict(orient="records"), strict=True):
        inputs = {"file": file, **{k: float(v) for k, v in row.items()}}
        log.append(pred, ts=ts, model=scored.name, inputs=inputs, latency_ms=latency_ms)


@router.post(
    "/v1/models/{name}/predict-image",
    responses={**errors_doc(), 415: {"model": ErrorBody, "description": UNSUPPORTED}},
    openapi_extra=body_doc(ImageRequest),
)
async def predict_image_route(name: str, request: Request, who: PredictCaller) -> Response:
    """The class of each image (multipart file parts, or base64 in JSON)."""
    served_name(request, parse_ref(name).name)
    files = await read_images(request)
    started = time.perf_counter()
    scored = await asyncio.to_thread(score_images, name, files)
    latency_ms = (time.perf_counter() - started) * 1000
    model = scored.model
    preds = [
        Prediction(
            label,
            {str(c): float(p) for c, p in zip(model.classes, row, strict=True)},
            float(row.max()),
            scored.version,
            "image",
            uuid.uuid4().hex,
        )  # fmt: skip
        for label, row in zip(model.labels(scored.proba), scored.proba, strict=True)
    ]
    _log(request, scored, files, preds, latency_ms)
    out = [{"name": n, **p.to_response()} for (n, _), p in zip(files, preds, strict=True)]
    return json_response({"model": scored.name, "version": scored.version, "predictions": out})


@router.post(
    "/v1/models/{name}/explain-image",
    responses={**errors_doc(), 415: {"model": ErrorBody, "description": UNSUPPORTED}},
    openapi_extra=body_doc(ImageRequest),
)
async def explain_image_route(name: str, request: Request, who: PredictCaller) -> Response:
    """Per image: the prediction and each pixel's attribution toward it (integrated
    gradients), as a height × width map divided by its largest absolute value (``scale``)."""
    served_name(request, parse_ref(name).name)
    files = await read_images(request)
    return json_response(await asyncio.to_thread(explain_images_ref, name, files))
