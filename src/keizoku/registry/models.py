"""The model registry: registered models, their versions, aliases and tags; verified reads.

Like MLflow's model registry it sits beside tracking (:mod:`keizoku.registry.tracking`):
a version points at a model a run logged. Registration records the sha256 of every
file of the version (``keizoku.sha256``, ``keizoku.artifacts``); every read
(:func:`load_model`, :func:`version_artifact`, :func:`verify_version`) checks it and
refuses a file that changed. :func:`load_model` returns a
:class:`~keizoku.registry.servable.ServableModel`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from keizoku.errors import IntegrityError, NotFoundError, UserInputError
from keizoku.home import home, mlflow_uri, sha256_file
from keizoku.names import check_name
from keizoku.registry.backend import (
    SqliteReader,
    client,
    open_reader,
    prepare,
    sqlite_path,
    store_lock,
)
from keizoku.registry.backend import registry_mark as _mark
from keizoku.registry.refs import ModelRef, parse_ref
from keizoku.registry.servable import ServableModel

__all__ = [
    "MODEL_FILE",
    "TAG_EXPORT",
    "ModelVersionInfo",
    "aliases",
    "delete_alias",
    "delete_tag",
    "delete_version",
    "get_version",
    "list_models",
    "list_versions",
    "load_model",
    "record_export",
    "recorded_artifacts",
    "register",
    "registry_mark",
    "require_model",
    "resolve",
    "set_alias",
    "set_tag",
    "sha256_file",
    "signature_of",
    "verify_version",
    "version_artifact",
]

MODEL_FILE = "keizoku_model.pkl"
TAG_SHA = "keizoku.sha256"
TAG_ARTIFACTS = "keizoku.artifacts"  # JSON {file name: sha256} of every artifact file
TAG_STATE = "keizoku.state"  # lifecycle state, see keizoku.lifecycle.state
TAG_EXPORT = "keizoku.export."  # + format: JSON summary of the last verified export
_lock = threading.Lock()
_cache: dict[tuple[str, str, int], ServableModel] = {}  # (store URI, name, version)
CACHE_SIZE = 8  # loaded models kept in memory per process


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


def _reader() -> Any:
    """For reads: a :class:`SqliteReader` of a healthy local store (MLflow is not imported),
    else the ``MlflowClient`` (which prepares the store and refuses a damaged one).

    A new home's SQLite store is prepared first, as the client would: copied from the
    cache (``keizoku.registry.seed``), it is then read without importing MLflow.
    """
    uri = mlflow_uri()
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        prepare(uri)
    return open_reader(db) or client()


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


def registry_mark() -> tuple[object, ...] | None:
    """Changes with every write to this home's registry; None when that cannot be told
    cheaply (see :func:`keizoku.registry.backend.registry_mark`)."""
    return _mark(mlflow_uri())


def list_models() -> list[str]:
    c = _reader()
    return sorted(m.name for m in c.search_registered_models())


def require_model(name: str) -> str:
    """``name`` when it is a valid name of a registered model; one clear error otherwise.

    Call it before writing anything for a model named on the command line or in a URL.
    """
    check_name(name)
    c = _reader()
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
    c = _reader()
    with c.reading() if isinstance(c, SqliteReader) else nullcontext():  # one connection
        versions = c.search_model_versions(f"name='{name}'")
        if not versions:
            raise NotFoundError(
                f"No registered model named '{name}'{_hint(c, name)}. "
                "Train one with `keizoku train`."
            )
        aliases = _aliases(c, name)
        return sorted((_info(c, v, aliases) for v in versions), key=lambda v: v.version)


def _hint(c: Any, name: str) -> str:
    from keizoku.names import closest

    names = [m.name for m in c.search_registered_models()]
    best = closest(name, names) if names else None
    return f"; did you mean '{best}'?" if best else ""


_RESOLVED: dict[tuple[str, str, int | None, str | None], tuple[object, int]] = {}
_RESOLVED_KEPT = 256


def resolve(ref: str | ModelRef) -> tuple[str, int]:
    """``NAME[@alias|:version]`` → (name, version).

    An answer is remembered with the registry's :func:`registry_mark` and given again
    while the mark is unchanged (no write since; a server's explain route resolves twice
    per request); without a mark (a recent write, not a local SQLite file) it is read."""
    r = parse_ref(ref) if isinstance(ref, str) else ref
    check_name(r.name)
    mark = registry_mark()
    key = (mlflow_uri(), r.name, r.version, r.alias)
    hit = _RESOLVED.get(key) if mark is not None else None
    if hit is not None and hit[0] == mark:
        return r.name, hit[1]
    name, version = _resolve(r)
    if mark is not None:
        with _lock:
            _RESOLVED[key] = (mark, version)
            while len(_RESOLVED) > _RESOLVED_KEPT:
                _RESOLVED.pop(next(iter(_RESOLVED)))
    return name, version


def _resolve(r: ModelRef) -> tuple[str, int]:
    c = _reader()
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
    c = _reader()
    return _info(c, c.get_model_version(name, str(version)), _aliases(c, name))


def _writer() -> Any:
    """The ``MlflowClient`` for a write to a model's versions, tags or aliases.

    Before each such write MLflow makes sure the name is not a prompt (MLflow keeps prompts
    as registered models): it reads the whole registered model, every version with its
    tags and aliases, through SQLAlchemy (~10-20 ms of CPU a write in a new process, three
    writes per admitted train). On a healthy local SQLite store the reader answers the same
    question with one query; a name it does not find as a model (missing, or a prompt)
    still gets MLflow's own check and its error. Another store keeps MLflow's check.
    """
    c = client()
    reader = open_reader(sqlite_path(mlflow_uri()))
    if reader is not None:
        mlflow_check = c._raise_if_prompt  # tests/registry/test_models.py pins this name

        def check(name: str) -> None:
            if not reader.is_registered_model(name):
                mlflow_check(name)

        c._raise_if_prompt = check
    return c


def set_alias(name: str, alias: str, version: int) -> None:
    _writer().set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str) -> None:
    _writer().delete_registered_model_alias(name, alias)


def aliases(name: str) -> dict[str, int]:
    """alias → version of a registered model."""
    return {k: int(v) for k, v in (_reader().get_registered_model(name).aliases or {}).items()}


def set_tag(name: str, version: int, key: str, value: str) -> None:
    _writer().set_model_version_tag(name, str(version), key, value)


def record_export(name: str, version: int, fmt: str, summary: dict[str, Any], folder: Path) -> None:
    """Record an export of ``name:version``: the tag ``keizoku.export.<fmt>`` (its JSON
    ``summary``) and the bundle's ``parity.json`` and ``manifest.json`` as artifacts of the
    version's run, under ``export/<fmt>/``."""
    c = _writer()
    run_id = c.get_model_version(name, str(version)).run_id
    if run_id:
        for file in ("parity.json", "manifest.json"):
            if (folder / file).exists():
                c.log_artifact(run_id, str(folder / file), f"export/{fmt}")
    c.set_model_version_tag(name, str(version), TAG_EXPORT + fmt, json.dumps(summary))


def delete_tag(name: str, version: int, key: str) -> None:
    _writer().delete_model_version_tag(name, str(version), key)


def delete_version(name: str, version: int) -> None:
    """Remove a version that must not stay registered (a candidate whose admission failed)."""
    _writer().delete_model_version(name, str(version))


def _local_dir(c: Any, name: str, version: int) -> Path:
    uri = c.get_model_version_download_uri(name, str(version))
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    import mlflow

    cache = home() / "cache" / name / str(version)
    if not cache.exists():
        tmp = Path(tempfile.mkdtemp(dir=home()))
        # MLflow puts a folder's files under dst_path/<its last name>: use what it returns
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp))
        cache.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, cache)
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


_verified: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) → sha256 seen


def _sha_cached(path: Path) -> str:
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
    c = _reader()
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
    c = _reader()
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


def load_model(ref: str | ModelRef) -> ServableModel:
    """Load a registered model, refusing a file whose sha256 was not recorded or differs,
    and an object that is not a keizoku model (see :class:`ServableModel`)."""
    import joblib

    name, version = resolve(ref)
    key = (mlflow_uri(), name, version)  # two homes in one process may share a model name
    with _lock:
        if key in _cache:
            return _cache[key]
    c = _reader()
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
    if not isinstance(model, ServableModel):
        needed = sorted(a for a in vars(ServableModel) if not a.startswith("_"))
        lacks = [a for a in needed if not hasattr(model, a)]
        raise UserInputError(
            f"Version {name}:{version} is not a keizoku model (lacks {lacks}); only models "
            "registered by `keizoku train` can be loaded."
        )
    with _lock:
        _cache[key] = model
        while len(_cache) > CACHE_SIZE:  # oldest first: a hot swap keeps the new and the old
            _cache.pop(next(iter(_cache)))
    return model


def register(
    name: str, model_uri: str, run_id: str, hashes: dict[str, str], tags: dict[str, str]
) -> int:
    """Register a logged model as a new version of ``name``, with its tags, atomically.

    ``hashes`` maps each file of the version (the model file included) to its sha256,
    as computed when it was logged. No alias is set: the version is ``registered`` (tag
    ``keizoku.state``) until ``keizoku.lifecycle.state`` admits it after its gates.
    Registrations hold the store's lock, so concurrent ones get distinct versions.
    """
    if MODEL_FILE not in hashes:
        raise IntegrityError(f"Registering {name} needs the sha256 of its model file {MODEL_FILE}.")
    c = client()  # prepares the store before its lock is taken below
    recorded = {
        **tags,
        TAG_SHA: hashes[MODEL_FILE],
        TAG_ARTIFACTS: json.dumps(hashes, sort_keys=True),
        TAG_STATE: "registered",
    }
    reader = open_reader(sqlite_path(mlflow_uri()))  # its first check takes the lock too
    with store_lock(mlflow_uri()):
        if not _exists(c, reader, name):
            c.create_registered_model(name)
        # the tags are written with the version, in one transaction: a version never exists
        # without its hashes and state, and a refused tag leaves no version behind
        return int(c.create_model_version(name, model_uri, run_id, tags=recorded).version)


def _exists(c: Any, reader: SqliteReader | None, name: str) -> bool:
    """Whether ``c.get_registered_model(name)`` finds a model; asked of ``reader`` when
    there is one (MLflow's read loads every version of the model and its tags)."""
    if reader is not None:
        return reader.is_registered_model(name)
    try:
        c.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises its own RestException
        return False
    return True


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
