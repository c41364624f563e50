"""Colour images through the real executable: red and green squares of the same luminance
(identical in grayscale) are told apart only when the images are read as RGB.

``init`` sees the colour and writes ``colour: true``; the CNN trains on three channels;
``keizoku predict`` and the server's ``/predict-image`` read uploads as RGB too. The same
folder with ``colour: false`` is the control: in grayscale the classes are the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import text_support
from kzsupport import Server, need_module

need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

# Luminance (ITU-R 601, what PIL's "L" uses): 0.299 * 200 = 59.8 and 0.587 * 102 = 59.9.
BASE = {"red": (200, 0, 0), "green": (0, 102, 0)}
PER_CLASS = 30


def write_squares(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, rgb in BASE.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            scale = rng.uniform(0.8, 1.2)
            pixels = np.asarray(rgb, dtype=float) * scale + rng.normal(0, 6, (8, 8, 3))
            img = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")
            img.save(root / name / f"{i:03d}.png")


class Project(text_support.Project):
    def init_and_train(self, colour: bool | None = None) -> dict[str, Any]:
        init = self.run("init", "squares", "--target", "colour")
        assert init.code == 0, init.text
        spec = yaml.safe_load((self.root / "keizoku.yaml").read_text())
        spec["images"].update(epochs=20, patience=20, channels=[8])
        if colour is not None:
            spec["images"]["colour"] = colour
        (self.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
        res = self.run("train", "--json", "--max-trials", "1")
        assert res.code in (0, 6), res.text
        body: dict[str, Any] = json.loads(res.out.strip().splitlines()[-1])
        body["_init"] = init.text
        body["_spec"] = spec
        return body


@pytest.fixture(scope="module")
def coloured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, Any]]]:
    p = Project(tmp_path_factory.mktemp("colour"))
    write_squares(p.root / "squares")
    yield p, p.init_and_train()


def test_init_sees_colour_and_writes_it_in_the_spec(
    coloured: tuple[Project, dict[str, Any]],
) -> None:
    _, trained = coloured
    assert trained["_spec"]["images"]["colour"] is True
    assert "resized to 8x8 RGB" in trained["_init"]


def test_the_cnn_tells_equal_luminance_colours_apart(
    coloured: tuple[Project, dict[str, Any]],
) -> None:
    _, trained = coloured
    assert trained["state"] == "champion", trained
    assert trained["holdout_accuracy"] >= 0.9, trained


def test_in_grayscale_the_same_images_are_one_class(tmp_path: Path) -> None:
    """The control: ``colour: false`` on the same folder leaves the CNN at about chance."""
    p = Project(tmp_path)
    write_squares(p.root / "squares")
    trained = p.init_and_train(colour=False)
    assert trained["holdout_accuracy"] <= 0.75, trained


def test_predict_and_the_server_read_uploads_in_colour(
    coloured: tuple[Project, dict[str, Any]],
) -> None:
    project, _ = coloured
    fresh = project.root / "fresh"
    write_squares(fresh, seed=1)
    paths = sorted(fresh.rglob("*.png"))
    rows = [(str(path), path.parent.name) for path in paths]
    pd.DataFrame(rows, columns=["path", "truth"]).to_csv(project.root / "new.csv", index=False)
    res = project.run("predict", "-m", "squares@champion", "new.csv", "-o", "scored.csv")
    assert res.code == 0, res.text
    scored = pd.read_csv(project.root / "scored.csv")
    assert (scored["prediction"] == scored["truth"]).mean() >= 0.9, scored.head()
    srv = Server(project.root, env=project.env).wait_ready()
    try:
        files = [("image", (p.name, p.read_bytes(), "image/png")) for p in (paths[0], paths[-1])]
        answer = srv.client.post("/v1/models/squares/predict-image", files=files)
        assert answer.status_code == 200, answer.text
        got = [pred["prediction"] for pred in answer.json()["predictions"]]
        assert got == [paths[0].parent.name, paths[-1].parent.name]
    finally:
        assert srv.stop() == 0, srv.output()
