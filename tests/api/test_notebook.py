"""examples/notebook.ipynb runs top to bottom in a real kernel, on shipped data only."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        out.append(data.get("text/html", "") + data.get("text/plain", "") + o.get("text", ""))
    return "\n".join(out)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(keizoku_home: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    cells = {c.source.splitlines()[-1]: c for c in nb.cells if c.cell_type == "code"}
    assert "Leaderboard" in _text(cells["model.leaderboard()"])
    assert "<table" in _text(cells["model.leaderboard()"])
    shapes = _text(cells["train.shape, test.shape"])
    n_test = int(shapes.split("), (")[1].split(",")[0])
    assert _text(cells["predictions.shape"]) == f"({n_test},)"
    assert _text(cells["bool((same.predict(test) == predictions).all())"]) == "True"
    assert "champion" in _text(cells['model.register("penguins-notebook")'])
    assert (keizoku_home / "audit" / "penguins-notebook.jsonl").exists()
