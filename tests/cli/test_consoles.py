"""The CLI's consoles (``keizoku.cli._io``) read the terminal when they are first used.

A rich ``Console`` takes the width, the colours and whether its stream is a terminal
when it is made. Made on first use rather than when ``keizoku.cli`` is imported, a
process that imported the CLI earlier prints as a new ``keizoku`` process would: the
tests' fork server keeps the CLI imported (decision 0008, s16), and each command must
take its caller's ``COLUMNS`` (tests/test_forkserver.py compares a forked command's
output with the real executable's).
"""

from __future__ import annotations

import pytest
from rich.console import Console

from keizoku.cli import _io


def test_a_console_reads_the_environment_when_first_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    out, err = type(_io.console)(), type(_io.err)(stderr=True)
    monkeypatch.setenv("COLUMNS", "123")
    assert isinstance(out, Console) and isinstance(_io.console, Console)
    out.print("x" * 100, highlight=False)
    err.print("y" * 100, highlight=False)
    assert (out.width, err.width) == (123, 123)
    said = capsys.readouterr()
    assert said.out == "x" * 100 + "\n"  # one line: 123 columns, not 50
    assert said.err == "y" * 100 + "\n"


def test_a_setting_made_before_first_use_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = type(_io.console)()
    quiet.quiet = True  # what -q does (_io.set_quiet) before anything is printed
    quiet.print("hidden")
    assert quiet.quiet and capsys.readouterr().out == ""
