"""Fixtures of the console tests (built in console_support.py, once per package)."""

from console_support import browser, project, shared_requests  # noqa: F401
