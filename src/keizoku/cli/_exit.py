"""How the ``keizoku`` command ends: one outcome, one exit code (``keizoku.errors.ExitCode``).

Cron jobs and CI act on these codes, so every path out of a command goes through
:func:`run`:

- success → 0; ``typer.Exit(n)`` raised by a command → ``n`` (kept, not dropped);
- a :class:`~keizoku.errors.KeizokuError` → one ``error:`` line and its ``exit_code``;
- a usage error (unknown command or option, missing or malformed argument) → one
  ``error:`` line and a ``Try 'keizoku CMD --help' for help.`` hint on stderr, exit 2.
  ``keizoku`` (or a command group) without a command prints its help on stdout,
  ``error: Missing command.`` and the hint on stderr, and exits 2, as ``git`` does
  (git exits 1): running nothing is a mistake in a cron line. ``--help`` exits 0;
- SIGINT → ``aborted``, exit 130; SIGTERM → ``aborted (SIGTERM)``, exit 143. The
  signal is raised as ``KeyboardInterrupt`` inside the command, so the code that
  already cleans up on Ctrl-C (a training run marked FAILED, a half-created version
  deleted) runs for SIGTERM too. Commands that stop gracefully by design (``serve``,
  ``loop``) install their own handlers and keep their own codes;
- anything else is a bug: one ``internal error:`` line, exit 1;
  ``KEIZOKU_DEBUG=1`` prints the traceback as well.

Typer (0.29) bundles its own copy of click, so its usage errors are not
``click.ClickException``: both roots are recognised here.

The process then ends with :func:`leave`: what a normal interpreter exit does that
matters (join the threads that are not daemons, run the ``atexit`` handlers, flush stdout
and stderr), then ``os._exit``. It skips the interpreter's teardown of every imported
module, which does nothing a caller can see and took 0.3-1.3 s of CPU per command
(scikit-learn, MLflow, shap and LightGBM loaded: 0.75 s; a ``train``: 1.3 s).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from keizoku.errors import ExitCode, KeizokuError

if TYPE_CHECKING:
    from typer.models import CommandInfo

__all__ = ["exit_for", "invoked_only", "leave", "run", "usage_error_classes"]

DEBUG_ENV = "KEIZOKU_DEBUG"


def usage_error_classes() -> tuple[type[Exception], ...]:
    """The exception roots that typer/click raise for a bad command line."""
    found: list[type[Exception]] = []
    root = getattr(typer, "TyperException", None)  # typer >= 0.2x: its bundled click
    if isinstance(root, type):
        found.append(root)
    try:
        import click  # an unbundled typer (or a click command mounted in the app)

        found.append(click.ClickException)
    except ImportError:  # pragma: no cover - click ships with mlflow and uvicorn
        pass
    return tuple(found)


class _Signals:
    """SIGINT and SIGTERM become ``KeyboardInterrupt``; the first one received is kept."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        if self.received == signal.SIGTERM:
            return int(ExitCode.TERMINATED)
        return int(ExitCode.INTERRUPTED)


def invoked_only(app: typer.Typer, args: Sequence[str]) -> typer.Typer:
    """``app`` with only the top-level command or group that ``args`` run.

    typer builds every command's parameters (reading each function's annotations) before
    it runs one: ~60 ms of CPU at each start. The root's options are flags, so the first
    argument that is not an option names the command; when it names none (a typo, which
    the full app answers with its suggestions) or nothing is named (``--help``,
    ``--version``), the whole ``app``.
    """
    import copy

    first = next((a for a in args if not a.startswith("-")), None)
    if first is None:
        return app
    commands = [c for c in app.registered_commands if _command_name(c) == first]
    groups = [g for g in app.registered_groups if g.name == first]
    if len(commands) + len(groups) != 1:
        return app
    only = copy.copy(app)
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _command_name(info: CommandInfo) -> str:
    """The name a registered command answers to: given, else typer's from its function."""
    from typer.main import get_command_name

    if info.name:
        return info.name
    return get_command_name(info.callback.__name__) if info.callback else ""


def run(app: typer.Typer, err: Console, args: Sequence[str] | None = None) -> int:
    """Run ``app`` and return the process exit code; print at most a line or two on stderr."""
    signals = _Signals().install()
    try:
        code = _invoke(app, err, args, signals)
    finally:
        signals.restore()
    return code


def _invoke(app: typer.Typer, err: Console, args: Sequence[str] | None, signals: _Signals) -> int:
    try:
        returned = app(args=list(args) if args is not None else None, standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        return _aborted(err, signals)
    except KeizokuError as exc:
        if signals.received is not None:  # an error raised while stopping: the signal wins
            return _aborted(err, signals)
        _debug_traceback(err)
        _line(err, f"[bold red]error:[/] {escape(exc.message)}")
        return int(exc.exit_code)
    except usage_error_classes() as exc:
        return _usage(err, exc)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a trace
        if signals.received is not None:
            return _aborted(err, signals)
        _debug_traceback(err)
        _line(
            err,
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: "
            f"{escape(_one_line(exc))} — "
            f"rerun with {DEBUG_ENV}=1 for the traceback",
        )
        return int(ExitCode.INTERNAL)
    if signals.received is not None:  # typer turned the interrupt into Exit(130)
        return _aborted(err, signals)
    code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
    if code == ExitCode.INTERRUPTED:  # typer's own KeyboardInterrupt → Exit(130)
        return _aborted(err, signals)
    return code


def exit_for(exc: KeizokuError) -> typer.Exit:
    """Print ``exc`` as :func:`run` does and return the ``typer.Exit`` that keeps its code.

    For a command group that must also work when invoked on its own (a test runner, an
    embedding app) rather than through ``keizoku``'s entry point.
    """
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(int(exc.exit_code))


def _usage(err: Console, exc: Exception) -> int:
    code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        shown = ctx.get_help()  # typer's rich help prints itself on stdout and returns ""
        if shown:
            sys.stdout.write(shown.rstrip("\n") + "\n")
        message = "Missing command."
    else:
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        message += _given_value(exc)
    _line(err, f"[bold red]error:[/] {escape(' '.join(str(message).split()))}")
    if ctx is not None:
        _line(err, f"Try '{escape(ctx.command_path)} --help' for help.")
    return code


def _given_value(exc: Exception) -> str:
    """`` (got 'x')`` when typer's conversion failed on a value it does not quote itself."""
    errors = getattr(exc.__cause__, "errors", None)  # pydantic's ValidationError
    if not callable(errors):
        return ""
    try:
        found = errors()
    except Exception:  # noqa: BLE001 - a best-effort detail, never a second failure
        return ""
    if not found or "input" not in found[0]:
        return ""
    return f" (got {str(found[0]['input'])!r})"


def _aborted(err: Console, signals: _Signals) -> int:
    suffix = " (SIGTERM)" if signals.received == signal.SIGTERM else ""
    _line(err, f"aborted{suffix}")
    return signals.exit_code


def _line(err: Console, markup: str) -> None:
    err.print(markup, highlight=False, soft_wrap=True)


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """The first non-empty line of the message (SQL and HTTP errors run to many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else repr(exc)
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _debug_traceback(err: Console) -> None:
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        err.file.write(traceback.format_exc())
        err.file.flush()


def leave(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter would, without its module teardown.

    The order is Python's own: wait for non-daemon threads (and the executors that
    register with ``threading``), run the ``atexit`` handlers (logging, multiprocessing,
    Ray, MLflow), flush the standard streams; a stream whose reader has gone (a closed
    pipe) is not an error here. Where ``threading._shutdown`` is missing (another
    interpreter), or while a profiler or tracer runs (``python -m cProfile``, coverage:
    they write their results after the script returns), it exits the normal way.
    """
    shutdown = getattr(threading, "_shutdown", None)
    if not callable(shutdown) or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing to keep
            stream.flush()
    os._exit(code)
