"""All MLflow access: runs, trials, model versions, aliases, verified loading.

Storage is picked by URI (``KEIZOKU_TRACKING_URI``; default SQLite under
``KEIZOKU_HOME``), artifacts go under ``KEIZOKU_HOME/artifacts`` (or
``KEIZOKU_ARTIFACT_ROOT``, e.g. ``s3://bucket/prefix``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from keizoku.errors import IntegrityError, NotFoundError
from keizoku.home import home, mlflow_uri
from keizoku.names import check_name
from keizoku.registry import backend
from keizoku.registry.refs import ModelRef, parse_ref

__all__ = [
    "ModelVersionInfo",
    "TrainingRun",
    "get_version",
    "list_models",
    "list_versions",
    "load_model",
    "resolve",
    "set_alias",
    "version_artifact",
    "verify_version",
    "require_model",
    "recorded_artifacts",
    "aliases",
    "set_tag",
    "delete_tag",
    "delete_version",
    "delete_alias",
    "client",
]

MODEL_FILE = "keizoku_model.pkl"
TAG_SHA = "keizoku.sha256"
TAG_ARTIFACTS = "keizoku.artifacts"  # JSON {file name: sha256} of every artifact file
TAG_STATE = "keizoku.state"  # lifecycle state, see keizoku.lifecycle.state
_lock = threading.Lock()
_cache: dict[tuple[str, int], Any] = {}
CACHE_SIZE = 8  # loaded models kept in memory per process


def _quiet() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_TRACKING_DISABLE_TELEMETRY", "true")
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def client() -> Any:
    _quiet()
    import mlflow
    from mlflow import MlflowClient

    uri = mlflow_uri()
    backend.prepare(uri)  # schema created once, under a lock; a damaged store is refused
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def _artifact_root() -> str:
    return os.environ.get("KEIZOKU_ARTIFACT_ROOT") or (home() / "artifacts").as_uri()


def _experiment(c: Any, project: str) -> str:
    exp = c.get_experiment_by_name(project)
    if exp is not None:
        return str(exp.experiment_id)
    return str(c.create_experiment(project, artifact_location=f"{_artifact_root()}/{project}"))


@dataclass
class ModelVersionInfo:
    """A registered version as keizoku shows it."""

    name: str
    version: int
    aliases: list[str]
    metrics: dict[str, float]
    tags: dict[str, str]
    created: float
    run_id: str | None
    source: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def _aliases(c: Any, name: str) -> dict[str, list[str]]:
    """version → aliases (search results do not carry aliases; the registered model does)."""
    out: dict[str, list[str]] = {}
    for alias, version in (c.get_registered_model(name).aliases or {}).items():
        out.setdefault(str(version), []).append(alias)
    return out


def _info(c: Any, mv: Any, aliases: dict[str, list[str]] | None = None) -> ModelVersionInfo:
    metrics: dict[str, float] = {}
    if mv.run_id:
        try:
            metrics = dict(c.get_run(mv.run_id).data.metrics)
        except Exception:  # noqa: BLE001 - a deleted run must not hide the version
            metrics = {}
    return ModelVersionInfo(
        name=mv.name,
        version=int(mv.version),
        aliases=sorted(
            (aliases or {}).get(str(mv.version), []) if aliases is not None else mv.aliases or []
        ),
        metrics=metrics,
        tags=dict(mv.tags or {}),
        created=mv.creation_timestamp / 1000,
        run_id=mv.run_id,
        source=mv.source,
    )


def list_models() -> list[str]:
    c = client()
    return sorted(m.name for m in c.search_registered_models())


def require_model(name: str) -> str:
    """``name`` when it is a valid name of a registered model; one clear error otherwise.

    Call it before writing anything for a model named on the command line or in a URL.
    """
    check_name(name)
    c = client()
    try:
        c.get_registered_model(name)
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own RestException
        raise NotFoundError(
            f"No registered model named '{name}'{_hint(c, name)}. "
            "See `keizoku models` for the registered ones, or train one with `keizoku train`."
        ) from exc
    return name


def list_versions(name: str) -> list[ModelVersionInfo]:
    check_name(name)  # the name goes into a filter string: never let it carry quotes
    c = client()
    versions = c.search_model_versions(f"name='{name}'")
    if not versions:
        raise NotFoundError(
            f"No registered model named '{name}'{_hint(c, name)}. Train one with `keizoku train`."
        )
    aliases = _aliases(c, name)
    return sorted((_info(c, v, aliases) for v in versions), key=lambda v: v.version)


def _hint(c: Any, name: str) -> str:
    from keizoku.data.schema import closest

    names = [m.name for m in c.search_registered_models()]
    best = closest(name, names) if names else None
    return f"; did you mean '{best}'?" if best else ""


def resolve(ref: str | ModelRef) -> tuple[str, int]:
    """``NAME[@alias|:version]`` → (name, version)."""
    r = parse_ref(ref) if isinstance(ref, str) else ref
    check_name(r.name)
    c = client()
    if r.version is not None:
        try:
            c.get_model_version(r.name, str(r.version))
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own RestException
            raise NotFoundError(f"Model '{r.name}' has no version {r.version}.") from exc
        return r.name, r.version
    try:
        mv = c.get_model_version_by_alias(r.name, r.alias)
    except Exception as exc:  # noqa: BLE001
        list_versions(r.name)  # raises a clear error when the model does not exist
        raise NotFoundError(
            f"Model '{r.name}' has no version with alias '{r.alias}'. "
            f"See `keizoku models {r.name}` for its versions and aliases."
        ) from exc
    return r.name, int(mv.version)


def get_version(ref: str | ModelRef) -> ModelVersionInfo:
    name, version = resolve(ref)
    c = client()
    return _info(c, c.get_model_version(name, str(version)), _aliases(c, name))


def set_alias(name: str, alias: str, version: int) -> None:
    client().set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str) -> None:
    client().delete_registered_model_alias(name, alias)


def aliases(name: str) -> dict[str, int]:
    """alias → version of a registered model."""
    return {k: int(v) for k, v in (client().get_registered_model(name).aliases or {}).items()}


def set_tag(name: str, version: int, key: str, value: str) -> None:
    client().set_model_version_tag(name, str(version), key, value)


def delete_tag(name: str, version: int, key: str) -> None:
    client().delete_model_version_tag(name, str(version), key)


def delete_version(name: str, version: int) -> None:
    """Remove a version that must not stay registered (a candidate whose admission failed)."""
    client().delete_model_version(name, str(version))


def _local_dir(c: Any, name: str, version: int) -> Path:
    uri = c.get_model_version_download_uri(name, str(version))
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    import mlflow

    cache = home() / "cache" / name / str(version)
    if not cache.exists():
        tmp = Path(tempfile.mkdtemp(dir=home()))
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp))
        cache.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, cache)
    return cache


_verified: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) → sha256 seen


def _sha_cached(path: Path) -> str:
    from keizoku.registry.pyfunc import sha256_file

    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _verified:
            return _verified[key]
    sha = sha256_file(str(path))
    with _lock:
        _verified[key] = sha
    return sha


def recorded_artifacts(tags: dict[str, str]) -> dict[str, str]:
    """The artifact hashes recorded at registration ({} for a version registered before)."""
    try:
        data = json.loads(tags.get(TAG_ARTIFACTS) or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _check_file(name: str, version: int, path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = _sha_cached(path) if path.exists() else "(missing)"
    if actual != expected:
        raise IntegrityError(
            f"Artifact '{path.name}' of {name}:{version} was modified after registration: "
            f"sha256 {actual[:12]}… does not match the recorded {expected[:12]}…. "
            f"Refusing to use it; restore the file or retrain with `keizoku train`."
        )


def version_artifact(ref: str | ModelRef, filename: str) -> Path:
    """Local path of a file logged with a version, after checking its recorded sha256."""
    name, version = resolve(ref)
    c = client()
    path = _local_dir(c, name, version) / "artifacts" / filename
    if not path.exists():
        raise NotFoundError(f"Version {name}:{version} has no artifact '{filename}'.")
    tags = dict(c.get_model_version(name, str(version)).tags or {})
    expected = recorded_artifacts(tags).get(filename)
    if expected is None and filename == MODEL_FILE:
        expected = tags.get(TAG_SHA)
    _check_file(name, version, path, expected)
    return path


def verify_version(name: str, version: int) -> None:
    """IntegrityError unless the model file and every recorded artifact match their sha256."""
    c = client()
    tags = dict(c.get_model_version(name, str(version)).tags or {})
    folder = _local_dir(c, name, version) / "artifacts"
    if not tags.get(TAG_SHA):
        raise IntegrityError(
            f"Version {name}:{version} has no recorded sha256 ({TAG_SHA}); keizoku does not "
            "use model files it did not register. Re-register it with `keizoku train`."
        )
    _check_file(name, version, folder / MODEL_FILE, tags[TAG_SHA])
    for filename, expected in sorted(recorded_artifacts(tags).items()):
        _check_file(name, version, folder / filename, expected)


def load_model(ref: str | ModelRef) -> Any:
    """Load a registered ``KeizokuModel``, refusing a file whose sha256 was not recorded."""
    import joblib

    from keizoku.registry.pyfunc import sha256_file

    name, version = resolve(ref)
    with _lock:
        if (name, version) in _cache:
            return _cache[(name, version)]
    c = client()
    mv = c.get_model_version(name, str(version))
    expected = (mv.tags or {}).get(TAG_SHA)
    path = _local_dir(c, name, version) / "artifacts" / MODEL_FILE
    if not expected:
        raise IntegrityError(
            f"Version {name}:{version} has no recorded sha256 ({TAG_SHA}); keizoku does not "
            "load model files it did not register. Re-register it with `keizoku train`."
        )
    actual = sha256_file(str(path)) if path.exists() else "(missing)"
    if actual != expected:
        raise IntegrityError(
            f"Model file of {name}:{version} was modified after registration: sha256 "
            f"{actual[:12]}… does not match the recorded {expected[:12]}…. Refusing to load it."
        )
    model = joblib.load(path)
    with _lock:
        _cache[(name, version)] = model
        while len(_cache) > CACHE_SIZE:  # oldest first: a hot swap keeps the new and the old
            _cache.pop(next(iter(_cache)))
    return model


def _requirements() -> list[str]:
    reqs = []
    for dist in ("keizoku", "scikit-learn", "lightgbm", "xgboost-cpu", "pandas", "numpy", "mlflow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


@dataclass
class TrainingRun:
    """A parent MLflow run for one ``keizoku train``; trials become child runs."""

    project: str
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    experiment_id: str = ""
    _client: Any = None

    def __enter__(self) -> TrainingRun:
        self._client = client()
        self.experiment_id = _experiment(self._client, self.project)
        run = self._client.create_run(
            self.experiment_id,
            run_name=f"train {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={"keizoku.kind": "train"},
        )
        self.run_id = run.info.run_id
        self._log_params(self.run_id, self.params)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        self._client.set_terminated(self.run_id, status)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        if items:
            self._client.log_batch(run_id, params=items)

    def log_trial(
        self,
        number: int,
        family: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        status: str,
    ) -> None:
        from mlflow.entities import Metric

        run = self._client.create_run(
            self.experiment_id,
            run_name=f"trial {number} {family}",
            tags={
                "mlflow.parentRunId": self.run_id,
                "keizoku.kind": "trial",
                "keizoku.status": status,
                "keizoku.model": family,
            },
        )
        rid = run.info.run_id
        self._log_params(rid, {"model": family, **params})
        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v]
        if ms:
            self._client.log_batch(rid, metrics=ms)
        self._client.set_terminated(rid, "FINISHED" if status == "ok" else "KILLED")

    def log_metrics(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v]
        self._client.log_batch(self.run_id, metrics=ms)

    def register(
        self, model: Any, files: dict[str, Path], tags: dict[str, str], signature: Any = None
    ) -> int:
        """Log the model once as a pyfunc, register it as a candidate; undo on any failure.

        No alias is set: the version is ``registered`` (tag ``keizoku.state``) until
        ``keizoku.lifecycle.state`` admits it after its gates. The sha256 of the model file
        and of every artifact file is recorded (``keizoku.sha256``, ``keizoku.artifacts``).
        """
        import joblib
        import mlflow

        from keizoku.registry.pyfunc import sha256_file

        tmp = Path(tempfile.mkdtemp(prefix="keizoku-"))
        version: int | None = None
        try:
            model_path = tmp / MODEL_FILE
            joblib.dump(model, model_path, compress=3)
            sha = sha256_file(str(model_path))
            artifacts = {"keizoku_model": str(model_path)}
            artifacts.update({Path(p).name: str(p) for p in files.values()})
            entry = Path(__file__).with_name("_pyfunc_entry.py")
            with mlflow.start_run(run_id=self.run_id), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(entry),
                    artifacts=artifacts,
                    signature=signature,
                    pip_requirements=_requirements(),
                    model_config={"sha256": sha},
                )
            mv = (
                self._client.create_model_version(self.project, info.model_uri, self.run_id)
                if self._has_registered()
                else self._create_and_version(info.model_uri)
            )
            version = int(mv.version)
            hashes = {Path(p).name: sha256_file(str(p)) for p in files.values()}
            recorded = {
                **tags,
                TAG_SHA: sha,
                TAG_ARTIFACTS: json.dumps({MODEL_FILE: sha, **hashes}, sort_keys=True),
                TAG_STATE: "registered",
            }
            for k, v in recorded.items():
                self._client.set_model_version_tag(self.project, str(version), k, v)
            return version
        except BaseException:
            if version is not None:
                self._client.delete_model_version(self.project, str(version))
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _has_registered(self) -> bool:
        try:
            self._client.get_registered_model(self.project)
        except Exception:  # noqa: BLE001
            return False
        return True

    def _create_and_version(self, uri: str) -> Any:
        self._client.create_registered_model(self.project)
        return self._client.create_model_version(self.project, uri, self.run_id)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def signature_of(inputs: Any, outputs: Any) -> Any:
    """The MLflow signature of ``inputs`` → ``outputs()`` (None when it cannot be inferred).

    A signature is documentation: it never fails training.
    """
    from mlflow.models import infer_signature

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return infer_signature(inputs, outputs())
    except Exception:  # noqa: BLE001 - a signature is documentation; never fail training on it
        return None
