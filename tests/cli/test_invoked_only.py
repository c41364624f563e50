"""``keizoku`` builds only the command it runs (``keizoku.cli._exit.invoked_only``).

The executable's own answers (usage errors, suggestions, helps) are tested through it in
test_cli_exit_codes.py and test_convention_help.py; here: which app each command line gets,
and that a command's help is the same from the whole app and from its own.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from keizoku.cli import app
from keizoku.cli._exit import _command_name, invoked_only

NAMES = [_command_name(c) for c in app.registered_commands] + [
    str(g.name) for g in app.registered_groups
]


def test_each_command_line_gets_its_own_command_only() -> None:
    before = (list(app.registered_commands), list(app.registered_groups))
    assert len(NAMES) == len(set(NAMES)) > 20 and "serve" in NAMES and "rag" in NAMES
    for name in NAMES:
        only = invoked_only(app, ["-q", name, "--some-option", "value"])
        kept = [_command_name(c) for c in only.registered_commands]
        kept += [str(g.name) for g in only.registered_groups]
        assert kept == [name]
        assert only.registered_callback is app.registered_callback  # -q, -v, --version
    assert (app.registered_commands, app.registered_groups) == before  # app is unchanged


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["-v", "trian"], ["trian"]])
def test_no_command_or_an_unknown_one_gets_the_whole_app(args: list[str]) -> None:
    assert invoked_only(app, args) is app  # the root's help, or its suggestions


@pytest.mark.parametrize("args", [["models", "--help"], ["keys", "create", "--help"]])
def test_a_commands_help_is_the_same_from_its_own_app(args: list[str]) -> None:
    runner = CliRunner()
    whole = runner.invoke(app, args, env={"COLUMNS": "120"})
    own = runner.invoke(invoked_only(app, args), args, env={"COLUMNS": "120"})
    assert whole.exit_code == own.exit_code == 0
    assert own.output == whole.output and "Usage: keizoku " in own.output
