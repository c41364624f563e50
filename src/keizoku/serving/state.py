"""The models a server holds, and how a new version replaces the old one (hot swap).

A ``ServedModel`` is an immutable snapshot: the deployment plus one loaded version per
alias it routes to. A request takes the snapshot once and uses it to the end, so a swap
(building a new snapshot beside the old one, then one dict assignment) can never show a
request a half-loaded model. Loading happens off the event loop; a version whose
artifact fails its sha256 check is refused and the old snapshot keeps serving.

Without ``--model`` (``names`` None) the set *discovers*: every poll lists the registry and
loads each model that has a champion and is not served yet. A store with nothing
servable is not an error then: the set stays not ready, ``load_error`` saying why (no model
registered, or no champion yet), until a model appears (decision 0028). A store that does
not answer at start-up leaves it not ready too (``store_down``) until it answers.

An idle poll is cheap: after a poll that found everything in order (no failure, nothing
waiting for anything but a champion), the next one first asks the registry whether it
was written since (:func:`keizoku.registry.models.registry_mark`) and each served model
whether its deployment was; when neither was, that poll would find the same versions
again, so it reads nothing more. Any write, failure or unknown mark takes the full read.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from keizoku.errors import KeizokuError, NotFoundError
from keizoku.lifecycle.deployment import (
    Deployment,
    deployment_stamp,
    load_deployment,
    served_versions,
)
from keizoku.registry.servable import ServableModel
from keizoku.serving.metrics import Metrics
from keizoku.serving.outage import outage
from keizoku.serving.schemas import RecordValidator

__all__ = ["LoadedVersion", "ModelSet", "ServedModel", "SwapReport"]

_log = logging.getLogger("keizoku.serving")


@dataclass(frozen=True)
class LoadedVersion:
    """One registered version, loaded and hash-verified."""

    name: str
    version: int
    model: ServableModel


@dataclass(frozen=True)
class ServedModel:
    """What answers ``/v1/models/{name}/predict`` right now."""

    name: str
    deployment: Deployment
    deployment_stamp: float
    variants: dict[str, LoadedVersion]
    validator: RecordValidator

    @property
    def champion(self) -> LoadedVersion:
        return self.variants["champion"]

    def versions(self) -> dict[str, int]:
        return {alias: lv.version for alias, lv in self.variants.items()}


@dataclass
class SwapReport:
    """What a refresh did to one model."""

    name: str
    before: dict[str, int]
    after: dict[str, int]
    changed: bool
    error: str | None = None
    status: int = 200

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
            "error": self.error,
        }


def _stamp(name: str) -> float:
    return deployment_stamp(name)


NOTHING_REGISTERED = (
    "No model is registered yet, so there is nothing to serve. Train one on this store "
    "(keizoku init DATA --target COL; keizoku train): the server picks it up at its next poll."
)


def _no_champion(waiting: dict[str, str]) -> str:
    names = ", ".join(f"'{n}'" for n in sorted(waiting))
    first = sorted(waiting)[0]
    return (
        f"No champion yet for {names}: {waiting[first]} Promote a version (keizoku promote "
        f"{first} VERSION); the server picks it up at its next poll."
    )


@dataclass
class ModelSet:
    """The served models, their loading, and atomic swaps."""

    names: list[str] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    runtime: str = "python"  # "onnx": each version from its verified ONNX bundle (export/)
    models: dict[str, ServedModel] = field(default_factory=dict)
    ready: bool = False
    load_error: str | None = None
    waiting: dict[str, str] = field(default_factory=dict)  # registered, not servable: why
    store_down: bool = False  # the store did not answer at start-up: 503 store_unavailable
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    _quiet: tuple[object, ...] | None = None  # the registry's mark when a poll found all in order

    @property
    def discovers(self) -> bool:
        """True without ``--model``: models registered later are served too."""
        return not self.names

    def load_all(self) -> None:
        """Load the served models (startup).

        With ``names``: raises on the first one that cannot load. Discovering: a model
        without a champion waits (``waiting``), any other failure (a modified artifact)
        raises; with nothing loaded the set stays not ready, ``load_error`` saying why.
        """
        try:
            if self.names:
                for name in self.names:
                    self.refresh(name, force=True, strict=True)
            else:
                self._discover(strict=True)
        except KeizokuError as exc:
            self.load_error = exc.message
            raise
        self._settle()

    def refresh_all(self) -> list[SwapReport]:
        """Poll: pick up moved aliases, changed deployments and (discovering) new models.

        Never raises: a failure is reported and the served snapshots stay as they are.
        Reads nothing more when nothing was written since a poll that found all in order.
        """
        mark = self._mark()
        if mark is not None and mark == self._quiet and self._same_deployments():
            return [SwapReport(n, m.versions(), m.versions(), False) for n, m in self._served()]
        self._quiet = None  # until this read ends in order (it may raise)
        reports = []
        for name in list(self.models):
            reports.append(self.refresh(name))
        listed = True
        if self.discovers:
            try:
                reports.extend(self._discover(strict=False))
            except Exception as exc:  # noqa: BLE001 - the registry may be away for a while
                listed = False
                if ("", str(exc)) not in self._reported:
                    self._reported.add(("", str(exc)))
                    _log.error("Could not list the registered models: %s", exc)
            else:
                self._reported = {k for k in self._reported if k[0] != ""}
            self._settle()
        in_order = listed and all(r.error is None for r in reports)
        self._quiet = mark if in_order else None
        return reports

    def _served(self) -> list[tuple[str, ServedModel]]:
        return list(self.models.items())

    @staticmethod
    def _mark() -> tuple[object, ...] | None:
        from keizoku.registry.models import registry_mark

        try:
            return registry_mark()
        except Exception:  # noqa: BLE001 - no mark: the full read says what is wrong
            return None

    def _same_deployments(self) -> bool:
        """True when no served model's deployment was saved or reset since it was loaded."""
        try:
            return all(_stamp(n) == m.deployment_stamp for n, m in self._served())
        except Exception:  # noqa: BLE001 - the full read reports the store's failure
            return False

    def _discover(self, *, strict: bool) -> list[SwapReport]:
        """Load each registered model that is not served yet and has a champion now.

        A model without a champion waits, quietly. Any other failure (a modified artifact)
        raises when ``strict`` (startup), else is logged once and retried at the next poll.
        """
        from keizoku.registry.models import list_models

        reports = []
        for name in list_models():
            if name in self.models:
                continue
            try:
                reports.append(self.refresh(name, force=True, strict=True))
            except NotFoundError as exc:  # no champion yet
                self.waiting[name] = exc.message
            except KeizokuError as exc:
                if strict:
                    raise
                if self.waiting.get(name) != exc.message:
                    _log.error("Model '%s' cannot be served yet: %s", name, exc.message)
                self.waiting[name] = exc.message
                reports.append(SwapReport(name, {}, {}, False, exc.message, exc.http_status))
            else:
                self.waiting.pop(name, None)
        return reports

    def wait_for_store(self, why: str) -> None:
        """The store did not answer at start-up: not ready, ``why`` the reason, until a
        ``load_all`` succeeds."""
        self.store_down, self.load_error = True, why

    def _settle(self) -> None:
        """``ready`` once something is served; otherwise ``load_error`` says why not."""
        self.store_down = False
        if self.models:
            self.ready, self.load_error = True, None
        elif not self.waiting:
            self.load_error = NOTHING_REGISTERED
        else:
            self.load_error = _no_champion(self.waiting)

    def refresh(self, name: str, *, force: bool = False, strict: bool = False) -> SwapReport:
        """Load what ``name``'s aliases point at now and swap it in if anything changed.

        ``strict`` raises on failure (startup); otherwise the error is reported and the
        old snapshot keeps serving.
        """
        with self._lock:
            old = self.models.get(name)
            before = old.versions() if old else {}
            try:
                new = self._build(name, old, force)
            except KeizokuError as exc:
                if strict:
                    raise
                return self._failed(name, before, exc)
            if new is None:
                return SwapReport(name, before, before, changed=False)
            self.models[name] = new  # the swap: one assignment
            self.metrics.set_loaded(name, new.versions())
            if old is not None:
                self.metrics.swapped(name, "ok")
                _log.info("Model '%s' now serves %s (was %s)", name, new.versions(), before)
            self._reported = {k for k in self._reported if k[0] != name}
            return SwapReport(name, before, new.versions(), changed=True)

    def _failed(self, name: str, before: dict[str, int], exc: KeizokuError) -> SwapReport:
        self.metrics.swapped(name, "failed")
        key = (name, exc.message)
        if key not in self._reported:
            self._reported.add(key)
            _log.error("Model '%s' keeps serving %s: %s", name, before, exc.message)
        down = outage(exc)  # a store that is away: 503, not the 400/404 it caused
        why = down or exc
        return SwapReport(
            name, before, before, changed=False, error=why.message, status=why.http_status
        )

    def _build(self, name: str, old: ServedModel | None, force: bool) -> ServedModel | None:
        from keizoku.lifecycle.state import may_answer

        stamp = _stamp(name)
        deployment = load_deployment(name)
        aliases = deployment.aliases
        if "champion" not in aliases:
            aliases = ["champion", *aliases]
        wanted = served_versions(name, deployment, aliases)
        unchanged = (
            old is not None
            and old.versions() == wanted
            and old.deployment_stamp == stamp
            and not force
        )
        if unchanged:
            return None
        variants: dict[str, LoadedVersion] = {}
        for alias, version in wanted.items():
            reuse = old.variants.get(alias) if old else None
            if reuse is not None and reuse.version == version:
                variants[alias] = reuse
                continue
            may_answer(name, version, alias)  # never an ungated version, however aliases moved
            model = self._load(name, version)
            variants[alias] = LoadedVersion(name, version, model)
        validator = RecordValidator(variants["champion"].model.schema, deployment.entity_key)
        return ServedModel(name, deployment, stamp, variants, validator)

    def _load(self, name: str, version: int) -> ServableModel:
        from keizoku.registry.models import load_model

        if self.runtime == "onnx":
            from keizoku.export.servable import load_onnx

            return load_onnx(name, version)
        return load_model(f"{name}:{version}")
