"""Where a profiled `make test` spent its CPU, per test file (decision 0008).

``python bench/test_cpu_report.py PREFIX [N]`` reads what a run with ``-p pytest_cpu``,
``KEIZOKU_TEST_CPU=PREFIX`` and ``KEIZOKU_TEST_FORK_LOG=PREFIX`` wrote:

- ``PREFIX.<worker>``: per test, wall, the pytest process's CPU and its waited
  children's (bench/pytest_cpu.py);
- ``PREFIX.server.*``: the test fork server's log, one line per forked ``keizoku``
  command (its pid, arguments and test) and one per exit (its CPU, system time included).

Forked commands are children of the fork server, not of the test that asked for them, so
only the log ties their CPU to a test file. Prints the totals, the CPU per command name,
and the ``N`` (default 40) test files that cost the most CPU: total, own, children,
forked, and the summed wall of their tests.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

RUNS = re.compile(r"forkserver: pid (\d+) runs (\[.*?\]) for (\S+)")
ENDS = re.compile(r"forkserver: pid (\d+) status \S+ cpu ([\d.]+)")


def forked(prefix: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """CPU of the forked commands by test file and by command name; commands by name."""
    by_file: Counter[str] = Counter()
    by_command: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for log in Path(prefix).parent.glob(f"{Path(prefix).name}.server.*"):
        started: dict[str, tuple[str, str]] = {}
        for line in log.read_text(errors="replace").splitlines():
            if m := RUNS.match(line):
                args = ast.literal_eval(m[2])
                started[m[1]] = (args[0] if args else "-", m[3].split("::")[0])
            elif (m := ENDS.match(line)) and m[1] in started:
                command, test_file = started.pop(m[1])
                by_file[test_file] += float(m[2])
                by_command[command] += float(m[2])
                count[command] += 1
    return by_file, by_command, count


def in_tests(prefix: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Wall, own CPU and children's CPU by test file."""
    wall: Counter[str] = Counter()
    own: Counter[str] = Counter()
    children: Counter[str] = Counter()
    folder, name = Path(prefix).parent, Path(prefix).name
    for path in folder.glob(f"{name}.*"):
        if ".server." in path.name:
            continue
        for line in path.read_text().splitlines():
            node, w, o, c = line.split("\t")[:4]
            test_file = node.split("::")[0]
            wall[test_file] += float(w)
            own[test_file] += float(o)
            children[test_file] += float(c)
    return wall, own, children


def main(prefix: str, top: int = 40) -> None:
    fork_file, fork_command, count = forked(prefix)
    wall, own, children = in_tests(prefix)
    total = sum(own.values()) + sum(children.values()) + sum(fork_file.values())
    print(
        f"CPU {total:.1f} s: own {sum(own.values()):.1f}, children "
        f"{sum(children.values()):.1f}, forked {sum(fork_file.values()):.1f} "
        f"({sum(count.values())} commands)"
    )
    print("\nforked CPU by command (s, commands, s each):")
    for command, cpu in fork_command.most_common(12):
        print(f"{cpu:8.1f} {count[command]:5d} {cpu / count[command]:6.2f}  {command}")
    files = set(own) | set(fork_file)
    ranked = sorted(files, key=lambda f: -(own[f] + children[f] + fork_file[f]))
    print(f"\n{'total':>7} {'own':>7} {'child':>7} {'forked':>7} {'wall':>7}  file")
    for f in ranked[:top]:
        parts = (own[f] + children[f] + fork_file[f], own[f], children[f], fork_file[f])
        print(" ".join(f"{p:7.1f}" for p in parts), f"{wall[f]:7.1f}  {f}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
