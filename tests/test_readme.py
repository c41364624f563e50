"""The README's quick start, run as `make demo` runs it (with a shorter budget)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from kzsupport import REPO


def test_readme_quick_start_runs_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    demo = tmp_path / "demo"
    env = {**os.environ, "KEIZOKU_DEMO_BUDGET": "12s", "KEIZOKU_DEMO_DIR": str(demo)}
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
