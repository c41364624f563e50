"""Deployments: which aliases of a model answer requests, in what split, and which shadows.

One store document per model, ``deployments/<name>`` (:mod:`keizoku.store`; in the
embedded store the file ``home()/deployments/<name>.json``, written atomically)::

    {"split": {"champion": 90, "challenger": 10}, "sticky_key": "customer_id",
     "entity_key": "customer_id", "shadow": null,
     "versions": {"champion": 1, "challenger": 2}, "experiment": "ab-20261129-...",
     "deployed_at": 1796000000.0}

``versions`` pins each variant to the version its alias named when the deployment was
made: the server routes to those versions even if an alias moves later, so a moved or
dropped alias can never silently change who answers. ``keizoku.lifecycle.experiments``
writes deployments (it checks the gates and audits); this module only stores them.

No document means "champion answers everything" (the version behind the ``champion``
alias). The server re-reads it when its stamp changes (:func:`deployment_stamp`), so
``keizoku deploy`` takes effect without a restart, on every server sharing the store.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from keizoku.errors import UserInputError
from keizoku.home import home
from keizoku.names import check_name, safe_child
from keizoku.store import store_from_env

__all__ = [
    "served_versions",
    "Deployment",
    "choose_variant",
    "deployment_path",
    "deployment_stamp",
    "load_deployment",
    "parse_split",
    "reset_deployment",
    "save_deployment",
]

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class Deployment(BaseModel):
    """How one model's traffic is routed."""

    split: dict[str, float] = Field(default_factory=lambda: {"champion": 100.0})
    sticky_key: str | None = None
    entity_key: str | None = None
    shadow: str | None = None
    versions: dict[str, int] = Field(default_factory=dict)
    experiment: str | None = None
    deployed_at: float | None = None

    @property
    def is_default(self) -> bool:
        """Champion only, no shadow, nothing pinned: the same as no deployment file."""
        return self.aliases == ["champion"] and not self.versions

    @field_validator("split")
    @classmethod
    def _check_split(cls, split: dict[str, float]) -> dict[str, float]:
        if not split:
            raise ValueError("the split names no alias; use e.g. --split champion=100")
        for alias, weight in split.items():
            if not _ALIAS.match(alias):
                raise ValueError(f"alias {alias!r} is not a valid alias name")
            if not weight >= 0:
                raise ValueError(f"weight of {alias!r} is {weight}; weights must be >= 0")
        if sum(split.values()) <= 0:
            raise ValueError("the split weights add up to 0; give at least one a positive weight")
        return split

    @model_validator(mode="after")
    def _entity(self) -> Deployment:
        if self.sticky_key and not self.entity_key:
            self.entity_key = self.sticky_key
        return self

    @property
    def aliases(self) -> list[str]:
        """Every alias this deployment needs loaded (split members and the shadow)."""
        names = [a for a, w in self.split.items() if w > 0]
        if self.shadow and self.shadow not in names:
            names.append(self.shadow)
        return names


KIND = "deployments"


def deployment_path(name: str) -> Path:
    """The embedded store's file of ``name``'s deployment."""
    return safe_child(home() / KIND, name, ".json")


def deployment_stamp(name: str) -> float:
    """Changes whenever ``name``'s deployment is saved or reset (0.0: none saved)."""
    return store_from_env().stamp(KIND, check_name(name))


def load_deployment(name: str) -> Deployment:
    """The model's deployment, or the default (champion only) when none is saved."""
    store = store_from_env()
    try:
        data = store.get(KIND, check_name(name))
        return Deployment() if data is None else Deployment.model_validate(data)
    except (ValueError, OSError) as exc:
        raise UserInputError(
            f"Deployment {KIND}/{name} in {store.describe()} is not valid: {exc}. Fix it or "
            f"run `keizoku deploy {name} --reset`."
        ) from exc


def save_deployment(name: str, deployment: Deployment) -> str:
    """Save ``name``'s deployment; returns where (for messages)."""
    store = store_from_env()
    store.put(KIND, check_name(name), deployment.model_dump())
    return f"{store.describe()}, {KIND}/{name}"


def reset_deployment(name: str) -> None:
    store_from_env().delete(KIND, check_name(name))


def parse_split(text: str) -> dict[str, float]:
    """``"champion=90,challenger=10"`` → ``{"champion": 90.0, "challenger": 10.0}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        alias, sep, weight = part.strip().partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not alias.strip() or value < 0:
            raise UserInputError(
                f"--split part {part.strip()!r} is not ALIAS=WEIGHT with a weight >= 0; "
                "write e.g. --split champion=90,challenger=10."
            )
        out[alias.strip()] = value
    return out


def choose_variant(
    split: dict[str, float], entity: Any = None, rng: random.Random | None = None
) -> str:
    """Pick an alias by weight: by a hash of ``entity`` when given (sticky), else at random."""
    total = sum(split.values())
    if entity is not None:
        digest = hashlib.blake2b(str(entity).encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / 2**64 * total
    else:
        point = (rng or random).random() * total
    acc = 0.0
    last = ""
    for alias, weight in split.items():
        if weight <= 0:
            continue
        acc += weight
        last = alias
        if point < acc:
            return alias
    return last


def served_versions(
    name: str, deployment: Deployment, aliases: list[str] | None = None
) -> dict[str, int]:
    """variant → the version that should answer: the pinned one, else the alias's version now."""
    from keizoku.registry.models import resolve

    aliases = aliases or deployment.aliases
    if "champion" not in aliases:
        aliases = ["champion", *aliases]
    return {
        alias: deployment.versions.get(alias) or resolve(f"{name}@{alias}")[1] for alias in aliases
    }
