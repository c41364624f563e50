"""Registry: MLflow, touched only inside this package.

Layered like MLflow's: :mod:`~keizoku.registry.backend` makes the store and its client;
:mod:`~keizoku.registry.tracking` holds experiments and runs (params, metrics, the
logged model, hashed as it is written); :mod:`~keizoku.registry.models` holds
registered models, versions, aliases and tags, and reads files only after checking
their recorded sha256. :func:`load_model` returns a :class:`ServableModel`.
"""

from keizoku.registry.models import (
    ModelVersionInfo,
    get_version,
    list_models,
    list_versions,
    load_model,
    require_model,
    resolve,
    set_alias,
    verify_version,
    version_artifact,
)
from keizoku.registry.refs import ModelRef, parse_ref
from keizoku.registry.servable import ServableMember, ServableModel
from keizoku.registry.tracking import TrainingRun

__all__ = [
    "ModelRef",
    "ModelVersionInfo",
    "ServableMember",
    "ServableModel",
    "TrainingRun",
    "get_version",
    "list_models",
    "list_versions",
    "load_model",
    "parse_ref",
    "require_model",
    "resolve",
    "set_alias",
    "verify_version",
    "version_artifact",
]
