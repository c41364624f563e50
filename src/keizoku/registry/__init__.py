"""Registry: MLflow tracking and model registry, touched only inside this package."""

from keizoku.registry.refs import ModelRef, parse_ref
from keizoku.registry.store import (
    ModelVersionInfo,
    TrainingRun,
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

__all__ = [
    "ModelRef",
    "ModelVersionInfo",
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
