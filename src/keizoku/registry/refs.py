"""Model references: ``NAME``, ``NAME@alias``, ``NAME:version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from keizoku.errors import UserInputError

__all__ = ["ModelRef", "parse_ref"]

_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<alias>[A-Za-z0-9_\-]+)|:(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias or 'champion'}"


def parse_ref(text: str) -> ModelRef:
    """Parse a reference; a bare name means its ``champion``."""
    match = _REF.match(text.strip())
    if not match:
        raise UserInputError(
            f"Model reference '{text}' is not valid. Use NAME, NAME@alias or NAME:version "
            "(for example churn@champion or churn:3)."
        )
    version = match.group("version")
    return ModelRef(
        match.group("name"),
        match.group("alias") or (None if version else "champion"),
        int(version) if version else None,
    )
