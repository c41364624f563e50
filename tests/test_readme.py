"""The README's quick start, run as `make demo` runs it (with a deterministic search).

Its `keizoku` is the tests' (``kzsupport.KEIZOKU_EXE``): the fork server's client, which
runs the same console script with the same arguments, folder, environment, standard
streams, exit codes and signals (``kill %1`` stops the server through it); the real
executable's start is tested in test_imports.py, cli/test_cli_exit_codes.py and
cli/test_cli_signals.py, and ``KEIZOKU_TEST_FORK=0`` runs this through it too.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from kzsupport import KEIZOKU_EXE, REPO


def test_readme_quick_start_runs_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    demo = tmp_path / "demo"
    # quickstart.sh puts KEIZOKU_DEMO_BUDGET after the README's `--budget`: two finished
    # trials end the search (the same model on a quiet or a loaded machine), not the clock.
    budget = "60s --max-trials 2"
    env = {**os.environ, "KEIZOKU_DEMO_BUDGET": budget, "KEIZOKU_DEMO_DIR": str(demo),
           "KEIZOKU_DEMO_BIN": os.path.dirname(KEIZOKU_EXE)}  # fmt: skip
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    proc = subprocess.run(
        [str(REPO / "examples" / "quickstart.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (demo / "profile.html").stat().st_size > 1000
    assert (demo / "report.html").stat().st_size > 1000
    scored = pd.read_csv(demo / "predictions.csv")
    assert len(scored) == 344 and "prediction" in scored.columns
    assert '"prediction":"Gentoo"' in proc.stdout  # the curl of one record
    assert "Registered penguins:1 as champion" in " ".join(proc.stdout.split())
    assert "Drift of penguins v1: 1 rows" in " ".join(proc.stdout.split())


def test_readme_block_is_what_the_demo_runs() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- quickstart:begin -->")[1].split("<!-- quickstart:end -->")[0]
    commands = [line for line in block.splitlines() if line.startswith("keizoku ")]
    assert commands[:3] == [
        "keizoku profile penguins.csv --target species --html profile.html",
        "keizoku init penguins.csv --target species",
        "keizoku train --budget 30s",
    ]
    assert readme.index("make demo") < readme.index("make test") < readme.index("## ")


def _exit_code_section() -> str:
    lifecycle = (REPO / "docs" / "lifecycle.md").read_text()
    return lifecycle.split("## Exit codes", 1)[1].split("\n## ", 1)[0]


def test_the_documented_exit_codes_are_the_codes_keizoku_uses() -> None:
    from keizoku.errors import ExitCode

    rows = [line for line in _exit_code_section().splitlines() if line.startswith("| ")]
    documented = {int(row.split("|")[1]) for row in rows[1:]}
    assert documented == {int(code) for code in ExitCode}
    readme = (REPO / "README.md").read_text()
    assert "(docs/lifecycle.md#exit-codes)" in readme


def test_the_cron_example_is_valid_shell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = _exit_code_section().split("```sh\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "nightly.sh"
    path.write_text(script)
    proc = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "keizoku monitor" in script and "case $rc in" in script
