"""docs/python.md is executable: its Python blocks run as one script from examples/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_python_page_runs(keizoku_home: Path) -> None:
    page = (REPO / "docs" / "python.md").read_text()
    blocks = [b.split("```", 1)[0] for b in page.split("```python\n")[1:]]
    assert len(blocks) == 4
    script = "\n".join(blocks) + '\nprint("page ran")\n'
    env = {**os.environ, "KEIZOKU_HOME": str(keizoku_home)}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO / "examples",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("page ran")
    assert (keizoku_home / "audit" / "penguins-py.jsonl").exists()
