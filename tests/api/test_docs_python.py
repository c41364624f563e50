"""docs/python.md is executable: its Python blocks run as one script from examples/.

The script runs in this process (``exec``, a namespace of its own, the working folder and
``KEIZOKU_HOME`` set as a user's would be): what the page shows is the library's API, and
a fresh interpreter's start and imports are tested on their own (tests/test_imports.py,
tests/api/test_notebook.py's real kernel).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_python_page_runs(
    keizoku_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = REPO / "docs" / "python.md"
    blocks = [b.split("```", 1)[0] for b in page.read_text().split("```python\n")[1:]]
    assert len(blocks) == 4
    script = "\n".join(blocks) + '\nprint("page ran")\n'
    monkeypatch.chdir(REPO / "examples")
    exec(compile(script, str(page), "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip().endswith("page ran")
    assert (keizoku_home / "audit" / "penguins-py.jsonl").exists()
