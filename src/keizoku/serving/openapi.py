"""The OpenAPI document: FastAPI's, plus one predict path per served model.

Each served model gets ``POST /v1/models/<name>/predict`` with a request body generated
from its training schema (``schemas.record_model``: names, types, enums, nullability,
an example) and a response body naming its classes. The document is rebuilt when a swap
changes a champion's version or a deployment's entity id field.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, create_model

from keizoku.serving.boundary import ErrorBody
from keizoku.serving.fastpath import MAX_RECORDS
from keizoku.serving.schemas import _model_id, example_record, record_model
from keizoku.serving.state import ServedModel

__all__ = ["install_openapi"]

REF = "#/components/schemas/{model}"


class FieldProblem(BaseModel):
    loc: list[str | int]
    field: str | None = None
    value: Any = None
    msg: str
    allowed: Any = None


def _response_model(served: ServedModel) -> tuple[type[BaseModel], type[BaseModel]]:
    champ = served.champion.model
    prefix = _model_id(served.name)
    pred: Any = float | None if champ.task == "regression" else Any
    fields: dict[str, Any] = {
        "request_id": (str, Field(description="one id per record, to join labels later")),
        "prediction": (pred, ...),
        "version": (int, Field(description="the model version that answered")),
        "variant": (str, Field(description="the alias that answered: champion, challenger")),
    }
    if champ.task != "regression":
        fields["probabilities"] = (
            dict[str, float],
            Field(description=f"probability of each class {champ.classes}"),
        )
    if served.deployment.entity_key:
        fields["entity_id"] = (Any, Field(None, description="echo of the entity id field"))
    item: Any = create_model(f"{prefix}Prediction", **fields)
    single = create_model(f"{prefix}Response", __base__=item, model=(str, ...))
    batch = create_model(f"{prefix}BatchResponse", model=(str, ...), predictions=(list[item], ...))
    return single, batch


def _add_schema(doc: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF)
    comps = doc.setdefault("components", {}).setdefault("schemas", {})
    comps.update(schema.pop("$defs", {}))
    comps[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    ref = _add_schema(doc, ErrorBody)
    _add_schema(doc, FieldProblem)
    body = {"content": {"application/json": {"schema": ref}}}
    return {
        "400": {"description": "a model name that breaks the naming rule", **body},
        "401": {"description": "no or invalid API key", **body},
        "403": {"description": "the key's role is not enough", **body},
        "404": {"description": "model not served", **body},
        "413": {"description": "too many records or too large a body", **body},
        "422": {
            "description": "a field is missing, unknown, of the wrong type, or unseen",
            **body,
        },  # fmt: skip
        "429": {"description": "too many requests from this caller; see Retry-After", **body},
        "503": {"description": "models still loading", **body},
    }


def _predict_path(doc: dict[str, Any], served: ServedModel) -> dict[str, Any]:
    schema = served.champion.model.schema
    record = record_model(served.name, schema, served.deployment.entity_key)
    ref = _add_schema(doc, record)
    single, batch = _response_model(served)
    one, many = _add_schema(doc, single), _add_schema(doc, batch)
    example = example_record(schema)
    return {
        "post": {
            "tags": ["predict"],
            "summary": f"Predict with {served.name}",
            "description": (
                "Send one record (a JSON object) or a list of records. Every feature is "
                "required; nullable ones accept null. One record answers one prediction "
                "object; a list answers {model, predictions: [...]}, in order."
            ),
            "operationId": f"predict_{_model_id(served.name)}",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                ref,
                                {
                                    "type": "array",
                                    "items": ref,
                                    "minItems": 1,
                                    "maxItems": MAX_RECORDS,
                                },
                            ]
                        },  # fmt: skip
                        "examples": {
                            "one record": {"value": example},
                            "a batch": {"value": [example, example]},
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "the prediction(s), with the version and variant that answered",
                    "content": {"application/json": {"schema": {"anyOf": [one, many]}}},
                },
                **_error_responses(doc),
            },
            "security": [{"bearer": []}, {"apiKey": []}, {}],
        }
    }


def _errors_everywhere(doc: dict[str, Any]) -> None:
    """Each route's 422 is keizoku's error body (FastAPI's own 422 schema never applies)."""
    errors = _error_responses(doc)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            responses = op.get("responses", {})
            if "422" in responses:
                responses["422"] = {**errors["422"], "description": responses["422"]["description"]}
    comps = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        comps.pop(unused, None)


def install_openapi(app: FastAPI, served: dict[str, ServedModel]) -> None:
    """Replace ``app.openapi`` with one that adds a predict path per served model."""
    cache: dict[Any, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        key = tuple(
            (n, m.champion.version, m.deployment.entity_key) for n, m in sorted(served.items())
        )
        if key in cache:
            return cache[key]
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = doc.setdefault("components", {})
        comps["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for name, model in sorted(served.items()):
            doc["paths"][f"/v1/models/{name}/predict"] = _predict_path(doc, model)
        _errors_everywhere(doc)
        cache.clear()
        cache[key] = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
