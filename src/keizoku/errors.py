"""One exception root for keizoku.

Every error carries a ``code`` that maps to a CLI exit code and an HTTP status,
so the CLI and the REST API report the same failure the same way::

    KeizokuError                 exit 1, HTTP 500
    ├── UserInputError           exit 2, HTTP 400   (bad flag, bad spec, bad file)
    │   ├── DataError            exit 2, HTTP 422   (a column, a value, a row)
    │   ├── SchemaMismatchError  exit 2, HTTP 422   (columns differ from training)
    │   └── ValidationError      exit 2, HTTP 422   (a request field is wrong)
    ├── NotFoundError            exit 3, HTTP 404   (model, version, alias, collection)
    ├── AuthError                exit 4, HTTP 401
    │   └── ForbiddenError       exit 4, HTTP 403
    ├── IntegrityError           exit 5, HTTP 409   (artifact hash does not match)
    ├── GateError                exit 6, HTTP 409   (a promotion gate refused)
    ├── MissingExtraError        exit 7, HTTP 501   (an optional dependency is absent)
    └── ConflictError            exit 8, HTTP 409   (the current state forbids it: an active
                                                     deployment, a busy lock, a store to repair)

Exit codes that are not errors (``ExitCode``): 10 drift found and 11 metric drop
(``keizoku monitor``, ``keizoku loop --once``), 130 interrupted (SIGINT), 143
terminated (SIGTERM). ``docs/lifecycle.md`` has the whole table.

Messages name the thing, the value and the fix.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = [
    "AuthError",
    "ConflictError",
    "ExitCode",
    "DataError",
    "ForbiddenError",
    "GateError",
    "IntegrityError",
    "KeizokuError",
    "KeizokuWarning",
    "MissingExtraError",
    "NotFoundError",
    "SchemaMismatchError",
    "UserInputError",
    "ValidationError",
    "require_extra",
]


class ExitCode(IntEnum):
    """Every exit code of the ``keizoku`` command (cron and CI act on these)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    INTEGRITY = 5
    GATE = 6
    MISSING_EXTRA = 7
    CONFLICT = 8
    DRIFT = 10
    METRIC_DROP = 11
    INTERRUPTED = 130
    TERMINATED = 143


class KeizokuWarning(UserWarning):
    """A warning raised by keizoku itself (tests turn these into errors)."""


class KeizokuError(Exception):
    """Root of every error keizoku raises on purpose."""

    code = "internal"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class UserInputError(KeizokuError):
    code = "bad_input"
    exit_code = 2
    http_status = 400


class DataError(UserInputError):
    code = "bad_data"
    http_status = 422


class SchemaMismatchError(DataError):
    code = "schema_mismatch"


class ValidationError(DataError):
    code = "validation"


class NotFoundError(KeizokuError):
    code = "not_found"
    exit_code = 3
    http_status = 404


class AuthError(KeizokuError):
    code = "unauthorized"
    exit_code = 4
    http_status = 401


class ForbiddenError(AuthError):
    code = "forbidden"
    http_status = 403


class IntegrityError(KeizokuError):
    code = "integrity"
    exit_code = 5
    http_status = 409


class GateError(KeizokuError):
    code = "gate_refused"
    exit_code = 6
    http_status = 409


class MissingExtraError(KeizokuError):
    code = "missing_extra"
    exit_code = 7
    http_status = 501


class ConflictError(KeizokuError):
    code = "conflict"
    exit_code = 8
    http_status = 409


def require_extra(module: str, extra: str) -> Any:
    """Import ``module`` or raise an error that names the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"This feature needs the optional package '{module}'. "
            f"Install it with: pip install 'keizoku[{extra}]'"
        ) from exc
