"""Tracking: experiments, runs, their params and metrics, and the model a run logs.

Like MLflow's tracking store, this module knows runs, not versions or aliases: one
``keizoku train`` is a parent run, each trial a child run. :meth:`TrainingRun.log_model`
hashes every file as it logs it (:class:`LoggedModel`), so the registry
(:mod:`keizoku.registry.models`) records the sha256 of exactly the bytes that were
logged. Artifacts go under ``KEIZOKU_HOME/artifacts`` (or ``KEIZOKU_ARTIFACT_ROOT``,
e.g. ``s3://bucket/prefix``).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from keizoku.registry.backend import artifact_root, client
from keizoku.registry.models import MODEL_FILE, sha256_file
from keizoku.registry.models import register as register_version
from keizoku.registry.servable import ServableModel

__all__ = ["LoggedModel", "TrainingRun"]

# MLflow loads a model logged as code under process-wide state (a stand-in ``dbutils`` in
# sys.modules, the model config): two loads at once in one process can leave the stand-in
# there for good. One log_model at a time per process.
_LOG_MODEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoggedModel:
    """A model logged with a run, and the sha256 of every file logged with it."""

    run_id: str
    uri: str  # where MLflow keeps it (``models:/m-…``)
    sha256: str  # of the model file
    artifacts: dict[str, str]  # file name → sha256, the model file included


def _experiment(c: Any, project: str) -> str:
    """The id of the project's experiment, created on first use."""
    from mlflow.exceptions import MlflowException

    exp = c.get_experiment_by_name(project)
    if exp is None:
        try:
            location = f"{artifact_root()}/{project}"
            return str(c.create_experiment(project, artifact_location=location))
        except MlflowException:  # another command created it meanwhile
            exp = c.get_experiment_by_name(project)
            if exp is None:
                raise
    return str(exp.experiment_id)


_DISTS = {  # distribution → the module it installs
    "keizoku": "keizoku", "scikit-learn": "sklearn", "lightgbm": "lightgbm",
    "xgboost-cpu": "xgboost", "pandas": "pandas", "numpy": "numpy", "mlflow": "mlflow",
}  # fmt: skip


@functools.cache
def _requirements() -> tuple[str, ...]:
    """The model's pip requirements: each distribution pinned at its installed version.

    Read once per process (each lookup parses the distribution's metadata; the installed
    versions do not change while it runs): a process that registers many versions (the
    loop, a retrain after another) looks them up once.
    """
    reqs = []
    for dist in _DISTS:
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(reqs)


def _skip_package_scan() -> None:
    """Spare ``log_model`` a scan of every installed package's file list.

    MLflow checks the requirements it is given against the environment, and to do so
    first maps every installed module to its distribution
    (``importlib_metadata.packages_distributions``: 0.8 s of CPU, 3.7 s wall under load,
    once per ``train``/``retrain``). keizoku's requirements are read from this very
    environment (:func:`_requirements`), so the check cannot fail; the map MLflow needs
    for them is given here instead. Only set when MLflow has not built its own.
    """
    from mlflow.utils import requirements_utils as ru

    if getattr(ru, "_MODULES_TO_PACKAGES", ()) is None:
        known = {module: [dist] for dist, module in _DISTS.items()}
        setattr(ru, "_MODULES_TO_PACKAGES", known)  # noqa: B010 - MLflow's own cache


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
        self._log(self.run_id, self.params)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        self._client.set_terminated(self.run_id, status)

    def _log(
        self, run_id: str, params: dict[str, Any], metrics: dict[str, float] | None = None
    ) -> None:
        """``params`` and ``metrics`` (NaN left out) in one batch: one store transaction."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        values = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if v == v]
        if items or values:
            self._client.log_batch(run_id, metrics=values, params=items)

    def log_trial(
        self,
        number: int,
        family: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        status: str,
    ) -> None:
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
        self._log(rid, {"model": family, **params}, metrics)
        self._client.set_terminated(rid, "FINISHED" if status == "ok" else "KILLED")

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self._log(self.run_id, {}, metrics)

    def log_model(
        self, model: ServableModel, files: dict[str, Path], signature: Any = None
    ) -> LoggedModel:
        """Log ``model`` once as an MLflow pyfunc, with ``files``; hash each file as it goes."""
        import joblib
        import mlflow

        tmp = Path(tempfile.mkdtemp(prefix="keizoku-"))
        try:
            model_path = tmp / MODEL_FILE
            joblib.dump(model, model_path, compress=3)
            sha = sha256_file(str(model_path))
            hashes = {
                MODEL_FILE: sha,
                **{Path(p).name: sha256_file(str(p)) for p in files.values()},
            }
            artifacts = {"keizoku_model": str(model_path)}
            artifacts.update({Path(p).name: str(p) for p in files.values()})
            entry = Path(__file__).with_name("_pyfunc_entry.py")
            _skip_package_scan()
            with _LOG_MODEL_LOCK, mlflow.start_run(run_id=self.run_id), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(entry),
                    artifacts=artifacts,
                    signature=signature,
                    pip_requirements=list(_requirements()),
                    model_config={"sha256": sha},
                )
            return LoggedModel(self.run_id, info.model_uri, sha, hashes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def register(
        self,
        model: ServableModel,
        files: dict[str, Path],
        tags: dict[str, str],
        signature: Any = None,
    ) -> int:
        """Log the model with this run and register it as a candidate of the project.

        See :func:`keizoku.registry.models.register`: no alias, state ``registered``,
        every hash recorded, nothing left registered on failure.
        """
        logged = self.log_model(model, files, signature)
        return register_version(self.project, logged.uri, logged.run_id, logged.artifacts, tags)
