"""Every ``keizoku …`` command line the containers run or the deployment guide shows
(Dockerfile, docker-compose.yml, deploy/k8s, docs/deployment.md) is one the real CLI
accepts: the command exists, each flag exists, value flags have a value and the number of
arguments fits. Read from ``keizoku COMMAND --help`` through the real executable."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from kzsupport import KEIZOKU_EXE, REPO

SHELL_STOP = {"|", "||", "&&", ";", "&", ">", ">>", "2>&1", "<"}
OPTION_NAME = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


@dataclass(frozen=True)
class Usage:
    """What ``--help`` says about one command."""

    flags: dict[str, bool]  # name -> takes a value
    commands: frozenset[str]  # sub-commands (a group)
    required: int  # positional arguments
    arguments: int


def _box_lines(text: str, title: str) -> list[str]:
    match = re.search(rf"╭─ {title} ─+╮\n(.*?)\n╰", text, re.S)
    return [line.strip("│ ") for line in match.group(1).splitlines()] if match else []


@functools.cache
def usage(path: tuple[str, ...]) -> Usage:
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([KEIZOKU_EXE, *path, "--help"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, f"keizoku {' '.join(path)} --help: {proc.stderr}"
    flags: dict[str, bool] = {}
    for line in _box_lines(proc.stdout, "Options"):
        names, _, kind = line.partition("<")
        for name in OPTION_NAME.findall(names):
            flags[name] = not kind.startswith("bool>")
    commands = frozenset(
        line.split()[0] for line in _box_lines(proc.stdout, "Commands") if line[:1].isalpha()
    )
    args = [line for line in _box_lines(proc.stdout, "Arguments")
            if re.match(r"\*?\s*[a-z_]+\s+<", line)]  # fmt: skip
    required = sum(line.startswith("*") for line in args)
    return Usage(flags, commands, required, len(args))


def check(argv: list[str]) -> None:
    """Raise AssertionError naming the first thing the CLI would refuse in ``keizoku argv``."""
    root = usage(())
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # root options: -q, -v
        assert argv[i] in root.flags, f"keizoku has no option {argv[i]}"
        i += 1
    if argv and i == len(argv):
        return  # root options alone: keizoku --help, keizoku --version
    path: tuple[str, ...] = ()
    spec = root
    while spec.commands:
        assert i < len(argv), f"keizoku {' '.join(path)} needs a command"
        assert argv[i] in spec.commands, f"keizoku {' '.join(path)} has no command {argv[i]!r}"
        path = (*path, argv[i])
        spec = usage(path)
        i += 1
    positionals = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-") and token != "-":
            name, eq, _ = token.partition("=")
            assert name in spec.flags, f"keizoku {' '.join(path)} has no option {name}"
            if spec.flags[name] and not eq:
                assert i + 1 < len(argv), f"keizoku {' '.join(path)} {name} needs a value"
                i += 1
        else:
            positionals += 1
        i += 1
    assert spec.required <= positionals <= spec.arguments, (
        f"keizoku {' '.join(path)} takes {spec.required}..{spec.arguments} arguments, "
        f"got {positionals}: {argv}"
    )


# --------------------------------------------------------------------- the command lines


def _until_shell(tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        if token in SHELL_STOP or token.startswith("#"):
            break
        out.append(token)
    return out


def _from_text(text: str, where: str, first: int = 1) -> list[tuple[str, list[str]]]:
    """``keizoku CMD …`` (or ``… run --rm keizoku CMD …``, the compose tools service) in shell
    lines: the tokens after ``keizoku`` when the next one is a keizoku command."""
    found = []
    top = usage(()).commands
    for n, line in enumerate(text.splitlines(), first):
        line = line.strip().lstrip("#$ ").strip()
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        for k, token in enumerate(tokens[:-1]):
            rest = tokens[k + 1 :]
            while rest and rest[0] in ("-q", "-v"):
                rest = rest[1:]
            if token.rsplit("/", 1)[-1] == "keizoku" and rest and rest[0] in top:
                found.append((f"{where}:{n}", _until_shell(tokens[k + 1 :])))
    return found


def _dockerfile() -> list[tuple[str, list[str]]]:
    text = (REPO / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry == ["keizoku"]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    return [("Dockerfile CMD", cmd)]


def _compose() -> list[tuple[str, list[str]]]:
    text = (REPO / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    found = [(f"docker-compose.yml {name}", service["command"])
             for name, service in services.items()
             if "keizoku" in service.get("image", "") and "command" in service]  # fmt: skip
    return found + _from_text(text, "docker-compose.yml")


def _k8s() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _containers(doc or {}):
                if "keizoku" in container["image"]:
                    found.append((f"{path.name} {container['name']}", container["args"]))
    return found


def _containers(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        if "containers" in node:
            return list(node["containers"])
        return [c for v in node.values() for c in _containers(v)]
    return []


def _docs() -> list[tuple[str, list[str]]]:
    """Shell blocks and inline code spans (`keizoku doctor --repair`) of the guide."""
    text = (REPO / "docs" / "deployment.md").read_text()
    found = []
    for m in re.finditer(r"```(?:bash|sh|console)?\n(.*?)```|`(keizoku [^`]+)`", text, re.S):
        first = text.count("\n", 0, m.start()) + 1 + (m[1] is not None)
        found += _from_text(m[1] or m[2], "docs/deployment.md", first)
    return found


def command_lines() -> list[tuple[str, list[str]]]:
    return _dockerfile() + _compose() + _k8s() + _docs()


# ------------------------------------------------------------------------------ tests


def test_every_source_has_command_lines() -> None:
    where = {w.split(" ")[0].split(":")[0] for w, _ in command_lines()}
    assert {"Dockerfile", "docker-compose.yml", "cronjob.yaml", "deployment.yaml",
            "docs/deployment.md"} <= where  # fmt: skip


def test_every_command_line_is_accepted_by_the_real_cli() -> None:
    refused = []
    for where, argv in command_lines():
        try:
            check(argv)
        except AssertionError as exc:
            refused.append(f"{where}: {exc}")
    assert refused == []


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["serve", "--hots", "0.0.0.0"], "has no option --hots"),
        (["loop", "penguins", "--every"], "--every needs a value"),
        (["loop", "--once"], "takes 1..1 arguments"),
        (["keys", "make", "--name", "x"], "has no command 'make'"),
        (["serve", "penguins"], "takes 0..0 arguments"),
    ],
)
def test_the_check_refuses_what_the_cli_refuses(argv: list[str], why: str, tmp_path: Any) -> None:
    with pytest.raises(AssertionError, match=re.escape(why)):
        check(argv)
    # Each of these is a usage error for the real executable too (before any work starts).
    env = {**os.environ, "KEIZOKU_HOME": str(tmp_path / "home")}
    proc = subprocess.run([KEIZOKU_EXE, *argv], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
