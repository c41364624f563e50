"""docs/deep-learning.md is executable: its Python blocks run as one script.

The script runs in this process (``exec``, a namespace of its own): what the page shows
is the library's API; a fresh interpreter's imports are tested in tests/test_imports.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kzsupport import need_module

need_module("torch", reason="torch_mlp needs torch: pip install 'keizoku[torch]'")

REPO = Path(__file__).resolve().parents[2]


def test_the_deep_learning_page_runs(capsys: pytest.CaptureFixture[str]) -> None:
    page = REPO / "docs" / "deep-learning.md"
    blocks = [b.split("```", 1)[0] for b in page.read_text().split("```python\n")[1:]]
    assert blocks
    script = "\n".join(blocks) + '\nassert emb.shape == (169, 128)\nprint("page ran")\n'
    exec(compile(script, str(page), "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip().endswith("page ran")
