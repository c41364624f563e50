"""docs/deep-learning.md is executable: its Python blocks run as one script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kzsupport import need_module

need_module("torch", reason="torch_mlp needs torch: pip install 'keizoku[torch]'")

REPO = Path(__file__).resolve().parents[2]


def test_the_deep_learning_page_runs() -> None:
    page = (REPO / "docs" / "deep-learning.md").read_text()
    blocks = [b.split("```", 1)[0] for b in page.split("```python\n")[1:]]
    assert blocks
    script = "\n".join(blocks) + '\nassert emb.shape == (169, 128)\nprint("page ran")\n'
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("page ran")
