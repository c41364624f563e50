"""One CLI convention (issue 12, item 1): every command's ``--help``, walked through the real
executable, matches docs/cli.md option for option, and a short flag means one thing."""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from kzsupport import KEIZOKU_EXE, REPO

DOCS = REPO / "docs" / "cli.md"
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _help(path: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([KEIZOKU_EXE, *path, "--help"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _box(text: str, title: str) -> list[str]:
    """The inner lines of the help box called ``title`` (rich: ``╭─ Title ──╮ … ╰──╯``)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} ")), None)
    if start is None:
        return []
    inner = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        inner.append(line.strip().strip("│").rstrip())
    return inner


def help_options(text: str) -> list[list[str]]:
    """Each option line's names (``['--model', '-m']``), without ``--help``."""
    found = []
    for line in _box(text, "Options"):
        body = line.strip().removeprefix("*").strip()
        if not body.startswith("-"):
            continue  # a wrapped help text
        names = OPTION.findall(body.split("<", 1)[0])
        if names and names != ["--help"]:
            found.append(names)
    return found


def help_commands(text: str) -> list[str]:
    return [line[1:].split()[0] for line in _box(text, "Commands") if line[:2] == " " + line[1:2]
            and line[1:2].strip()]  # fmt: skip


def walk() -> dict[tuple[str, ...], list[list[str]]]:
    """Every command path (the root is ``()``) with its options, from the executable."""
    found: dict[tuple[str, ...], list[list[str]]] = {}
    level: list[tuple[str, ...]] = [()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        while level:
            texts = dict(zip(level, pool.map(_help, level), strict=True))
            level = []
            for path, text in texts.items():
                subs = help_commands(text)
                if path == () or not subs:
                    found[path] = help_options(text)
                level += [(*path, sub) for sub in subs]
    return found


def documented() -> dict[tuple[str, ...], set[str]]:
    """Options of each ``### keizoku …`` section of docs/cli.md's reference."""
    text = DOCS.read_text().split("## Reference", 1)[1]
    out: dict[tuple[str, ...], set[str]] = {}
    for section in text.split("\n### keizoku")[1:]:
        heading, _, body = section.partition("\n")
        rows = [line for line in body.splitlines() if line.startswith("| `")]
        out[tuple(heading.split())] = {
            o for row in rows for o in re.findall(r"`(-[^`]+)`", row.split("|")[1])
        }
    return out


@pytest.fixture(scope="module")
def commands() -> dict[tuple[str, ...], list[list[str]]]:
    return walk()


def test_the_walk_finds_every_command(commands: dict[tuple[str, ...], list[list[str]]]) -> None:
    for path in [("init",), ("predict",), ("monitor",), ("ui", "mlflow"), ("keys", "create")]:
        assert path in commands
    assert ["--quiet", "-q"] in commands[()] and ["--verbose", "-v"] in commands[()]


def test_every_option_is_documented_and_every_documented_option_exists(
    commands: dict[tuple[str, ...], list[list[str]]],
) -> None:
    docs = documented()
    assert set(docs) == set(commands), "commands differ: regenerate the reference with " \
        "`python -m keizoku.cli._reference docs/cli.md`"  # fmt: skip
    for path, options in commands.items():
        shown = {name for names in options for name in names}
        where = f"keizoku {' '.join(path)}"
        assert shown - docs[path] == set(), f"{where}: in --help, not in docs/cli.md"
        assert docs[path] - shown == set(), f"{where}: in docs/cli.md, not in --help"


def test_a_short_flag_means_one_thing(commands: dict[tuple[str, ...], list[list[str]]]) -> None:
    meaning: dict[str, set[str]] = {}
    for options in commands.values():
        for names in options:
            longs = [n for n in names if n.startswith("--")]
            for short in (n for n in names if not n.startswith("--")):
                meaning.setdefault(short, set()).update(longs or [short])
    assert {s: m for s, m in meaning.items() if len(m) > 1} == {}


REPORTING = ["init", "profile", "models", "predict", "evidence", "promote", "rollback",
             "history", "monitor", "status", "report", "retrain", "abtest", "feedback",
             "explain", "doctor", "loop"]  # fmt: skip


@pytest.mark.parametrize("command", REPORTING)
def test_every_reporting_command_has_json(
    commands: dict[tuple[str, ...], list[list[str]]], command: str
) -> None:
    assert ["--json"] in commands[(command,)]


@pytest.mark.parametrize("command", ["report", "profile", "monitor"])
def test_html_pages_are_written_with_o(
    commands: dict[tuple[str, ...], list[list[str]]], command: str
) -> None:
    assert ["--output", "-o"] in commands[(command,)]
    assert all("--html" not in names for names in commands[(command,)])  # a hidden alias
