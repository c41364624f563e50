"""Access lists: who may see a document.

A document carries an access list of principals, each ``user:NAME`` or ``group:NAME``.
An identity (a user and the groups of that user) sees a document when one of its
principals is on the list. Every identified user is a member of ``group:everyone``;
a missing identity has no principals at all and therefore sees nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from keizoku.errors import UserInputError

__all__ = ["EVERYONE", "Identity", "normalize_principal", "normalize_acl"]

EVERYONE = "group:everyone"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")


def normalize_principal(raw: str) -> str:
    """Return ``user:NAME`` or ``group:NAME``; raise a UserInputError naming the fix."""
    text = str(raw).strip()
    kind, sep, name = text.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    if not sep or kind not in ("user", "group") or not _NAME.match(name):
        raise UserInputError(
            f"Access entry {text!r} is not valid. Write 'user:NAME' or 'group:NAME' "
            "(letters, digits, '_', '.', '@', '+', '-'), e.g. --allow group:hr --allow user:alice."
        )
    return f"{kind}:{name}"


def normalize_acl(entries: Iterable[str]) -> tuple[str, ...]:
    """Normalise and de-duplicate access entries, keeping a stable sorted order."""
    return tuple(sorted({normalize_principal(e) for e in entries}))


@dataclass(frozen=True)
class Identity:
    """Who asks: a user and that user's groups. ``Identity.anonymous()`` sees nothing."""

    user: str | None
    groups: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def anonymous(cls) -> Identity:
        return cls(user=None, groups=())

    def principals(self) -> tuple[str, ...]:
        """The access entries this identity matches (empty for a missing identity)."""
        if not self.user:
            return ()
        names = {f"user:{self.user}", EVERYONE}
        names.update(f"group:{g}" for g in self.groups if g)
        return tuple(sorted(names))
