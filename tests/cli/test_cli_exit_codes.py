"""Exit codes and usage errors through the real ``keizoku`` executable (issue 10, item 8).

Every usage error is one ``error:`` line plus a ``--help`` hint, exit 2, and never a
Python traceback; a command's own exit code reaches the shell; a bug is one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from keizoku import __version__
from keizoku.errors import ExitCode

# Exit codes and signals end to end: the real executable, never the test fork server
# (which runs only the setup that is not under test: the project's `init`).
from kzsupport import KEIZOKU_EXE as SETUP_EXE
from kzsupport import REAL_KEIZOKU_EXE as KEIZOKU_EXE
from kzsupport import REPO, CliResult


def run(home: Path, *args: str, exe: str = KEIZOKU_EXE, **env: str) -> CliResult:
    full_env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(home), **env}
    proc = subprocess.run(
        [exe, *args], env=full_env, capture_output=True, text=True, timeout=120,
        cwd=home.parent,
    )  # fmt: skip
    return CliResult(proc)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["trian"], "error: No such command 'trian'. Did you mean 'train'", "keizoku --help"),
        (["predict"], "error: Missing argument 'data'.", "keizoku predict --help"),
        (
            ["promote", "penguins", "notanumber"],
            "error: Invalid value for 'version': Input should be a valid integer, unable to "
            "parse string as an integer (got 'notanumber')",
            "keizoku promote --help",
        ),
        (["--bogus"], "error: No such option: --bogus", "keizoku --help"),
        (["train", "--bugdet", "5s"], "error: No such option: --bugdet", "keizoku train --help"),
        (["keys", "frobnicate"], "error: No such command 'frobnicate'.", "keizoku keys --help"),
    ],
)
def test_a_usage_error_is_one_line_a_hint_and_exit_2(
    keizoku_home: Path, args: list[str], error: str, hint: str
) -> None:
    result = run(keizoku_home, *args)
    assert result.code == ExitCode.USAGE == 2, result.text
    assert "Traceback" not in result.err
    assert result.out == ""
    first, second = lines(result.err)
    assert first.startswith(error), first
    assert second == f"Try '{hint}' for help."


@pytest.mark.parametrize("args", [[], ["keys"]])
def test_no_command_prints_the_help_and_exits_2(keizoku_home: Path, args: list[str]) -> None:
    result = run(keizoku_home, *args)
    assert result.code == 2, result.text
    assert "Usage: keizoku" in result.out
    command = " ".join(["keizoku", *args])
    assert lines(result.err) == ["error: Missing command.", f"Try '{command} --help' for help."]


def test_help_is_on_stdout_with_exit_0(keizoku_home: Path) -> None:
    result = run(keizoku_home, "--help")
    assert result.code == 0, result.text
    assert "Usage: keizoku" in result.out
    assert "doctor" in result.out


def test_version(keizoku_home: Path) -> None:
    result = run(keizoku_home, "--version")
    assert result.code == 0, result.text
    assert result.out == f"keizoku {__version__}\n"
    assert result.err == ""


def test_revoking_an_unknown_key_exits_3(keizoku_home: Path) -> None:
    result = run(keizoku_home, "keys", "revoke", "no-such-key")
    assert result.code == ExitCode.NOT_FOUND == 3, result.text
    assert lines(result.err) == [
        "error: No key named 'no-such-key'. List keys with 'keizoku keys list'."
    ]


def test_the_exit_code_a_command_raises_reaches_the_shell(keizoku_home: Path) -> None:
    # `rag` ends with typer.Exit(3); main() used to drop that code and exit 0.
    result = run(keizoku_home, "rag", "docs", "--collection", "nosuch")
    assert result.code == 3, result.text
    assert "Collection 'nosuch' does not exist" in result.err


@pytest.fixture
def project(keizoku_home: Path) -> Path:
    """A penguins project (keizoku init) in the folder the commands run in."""
    folder = keizoku_home.parent
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", folder / "penguins.csv")
    init = run(keizoku_home, "init", "penguins.csv", "--target", "species", exe=SETUP_EXE)
    assert init.code == 0, init.text
    return folder


# MLflow itself rejects this setting with a ValueError, when `train` opens its tracking
# store: a failure keizoku did not foresee. (Reads of the registry do not use MLflow.)
BAD_POOL = {"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NoSuchPool"}


def test_an_internal_error_is_one_line_naming_the_debug_switch(
    keizoku_home: Path, project: Path
) -> None:
    result = run(keizoku_home, "train", "--max-trials", "1", **BAD_POOL)
    assert result.code == ExitCode.INTERNAL == 1, result.text
    assert "Traceback" not in result.err
    said = [line for line in lines(result.err) if not line.startswith("[")]  # progress lines
    (line,) = said
    assert line.startswith("internal error: ValueError: Invalid poolclass parameter: NoSuchPool.")
    assert line.endswith("— rerun with KEIZOKU_DEBUG=1 for the traceback")


def test_keizoku_debug_shows_the_traceback(keizoku_home: Path, project: Path) -> None:
    result = run(keizoku_home, "train", "--max-trials", "1", KEIZOKU_DEBUG="1", **BAD_POOL)
    assert result.code == 1, result.text
    assert "Traceback (most recent call last)" in result.err
    assert lines(result.err)[-1].startswith("internal error: ValueError:")


def test_a_keizoku_error_keeps_its_code_and_is_one_line(keizoku_home: Path) -> None:
    result = run(keizoku_home, "models", "nosuchmodel")
    assert result.code == ExitCode.NOT_FOUND, result.text
    (line,) = lines(result.err)
    assert line.startswith("error: No registered model named 'nosuchmodel'")


def test_the_process_waits_for_its_threads_and_exit_handlers_before_it_ends(
    keizoku_home: Path, tmp_path: Path
) -> None:
    """``keizoku`` skips the interpreter's module teardown (``_exit.leave``), not what an
    exit must do: a thread that is not a daemon finishes, ``atexit`` handlers run, and
    what was printed reaches a file or a pipe whole, with the command's exit code."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marks = tmp_path / "marks"
    (hooks / "sitecustomize.py").write_text(
        "import atexit, pathlib, threading, time\n"
        f"marks = pathlib.Path({str(marks)!r})\n"
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    (marks / 'thread').write_text('done')\n"
        "threading.Thread(target=late).start()\n"
        "atexit.register(lambda: (marks / 'atexit').write_text(\n"
        "    'ran after the thread' if (marks / 'thread').exists() else 'ran first'))\n"
    )
    marks.mkdir()
    path = os.pathsep.join(p for p in [str(hooks), os.environ.get("PYTHONPATH", "")] if p)
    result = run(keizoku_home, "--version", PYTHONPATH=path)
    assert result.code == 0, result.text
    assert __version__ in result.out
    assert (marks / "thread").read_text() == "done"
    assert (marks / "atexit").read_text() == "ran after the thread"

    missing = run(keizoku_home, "models", "no-such-model", PYTHONPATH=path)
    assert missing.code == ExitCode.NOT_FOUND, missing.text
    assert "no-such-model" in missing.err

    # a long output through a pipe: every byte arrives
    out = tmp_path / "help.txt"
    with out.open("w") as fh:
        code = subprocess.run(
            [KEIZOKU_EXE, "train", "--help"], stdout=fh, stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"}, timeout=120,
        ).returncode  # fmt: skip
    piped = subprocess.run(
        [KEIZOKU_EXE, "train", "--help"], capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    assert code == 0 and piped.returncode == 0
    assert out.read_text() == piped.stdout and piped.stdout.rstrip().endswith("╯")


def test_a_profiled_keizoku_still_writes_its_profile(tmp_path: Path) -> None:
    """Under a profiler (``python -m cProfile``), which writes after the script returns,
    ``keizoku`` exits the normal way, so the profile is there."""
    import sys

    out = tmp_path / "keizoku.prof"
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), KEIZOKU_EXE, "--version"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    assert out.stat().st_size > 0
