"""Registry: MLflow tracking and model registry, touched only inside this package."""

from keizoku.registry.refs import ModelRef, parse_ref
from keizoku.registry.store import (
    ModelVersionInfo,
    TrainingRun,
    get_version,
    list_models,
    list_versions,
    load_model,
    resolve,
    set_alias,
    version_artifact,
)

__all__ = [
    "ModelRef",
    "ModelVersionInfo",
    "TrainingRun",
    "get_version",
    "list_models",
    "list_versions",
    "load_model",
    "parse_ref",
    "resolve",
    "set_alias",
    "version_artifact",
]
