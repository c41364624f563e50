"""Connecting to a Ray cluster: the one module that imports ray.

``--ray ADDRESS`` / ``train: ray: ADDRESS`` take ``auto`` (the cluster started on this
machine by ``ray start``), ``HOST:PORT`` (the head's GCS port, 6379 by default) or
``ray://HOST:PORT`` (Ray Client; needs ``ray[client]`` as well). A bad form is a
UserInputError before anything connects; a head that does not answer within
``PROBE_S`` seconds is one too, so nothing is trained or registered.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

from keizoku.errors import UserInputError, require_extra

__all__ = ["PROBE_S", "connect", "ray_module"]

PROBE_S = 5.0
_ADDRESS = re.compile(r"^(?P<scheme>ray://)?(?P<host>[^:/\s]+):(?P<port>\d{1,5})$")
FORMS = "'auto', HOST:PORT (the head's port, 6379 by default) or ray://HOST:10001"


def ray_module() -> Any:
    """The ray package, or MissingExtraError (exit 7) naming ``keizoku[ray]``."""
    return require_extra("ray", "ray")


def connect(address: str) -> Any:
    """The ray module, connected to the cluster at ``address`` (reused when already)."""
    if address != "auto" and not _ADDRESS.match(address):
        raise UserInputError(f"Ray address '{address}' is not one of {FORMS}.")
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if address != "auto":
        _probe(address)
    try:
        ray.init(
            address=address,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(
            f"No Ray cluster at '{address}' ({first[:160]}). Start one with `ray start "
            "--head` (docs/ray.md) or give its address with --ray / train.ray."
        ) from exc
    _cluster_messages_to_stderr(ray)
    return ray


def _cluster_messages_to_stderr(ray: Any) -> None:
    """Ray's messages about the cluster (a node died) go to stderr, not stdout.

    A driver's background thread prints the cluster's error events with
    ``ray._private.worker.print_to_stdstream`` on stdout, whatever ``log_to_driver`` says
    (worker output is off). A command's stdout is its result (``train --json``, scored
    CSV on ``-o -``), so they are sent to stderr as Ray's own warnings are. Where the
    function is missing (another Ray release) nothing changes.
    """
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    printer = getattr(worker, "print_to_stdstream", None)
    if worker is None or not callable(printer) or getattr(printer, "_keizoku_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr._keizoku_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _probe(address: str) -> None:
    """A TCP connect to the head, so an unreachable address fails in seconds, not minutes."""
    m = _ADDRESS.match(address)
    assert m is not None
    host, port = m["host"], int(m["port"])
    try:
        with socket.create_connection((host, port), timeout=PROBE_S):
            pass
    except OSError as exc:
        raise UserInputError(
            f"No Ray cluster answers at '{address}' ({exc.strerror or exc}). Start one with "
            "`ray start --head` (docs/ray.md) or fix the address given with --ray / train.ray."
        ) from exc
