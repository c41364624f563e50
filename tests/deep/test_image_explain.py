"""An image model that explains itself, through the real executable, registry and server.

The images (16x16 grayscale, written at test time) are decided by one region: a bright
square in the top-left corner is class ``tl``, in the bottom-right corner class ``br``.
Every image also carries a distractor square, as bright, in the top-right or bottom-left
corner at random: it says nothing of the class. Two images per class in the hold-out
(chosen by ``holdout_mask``, the rule training uses) are labelled wrongly, so the report
has confident wrong answers to show.

Checked here: the route answers and logs from one forward pass exactly what two passes
gave (issue 17, s7 step 1); ``keizoku explain --image``, ``/explain-image`` and the report
put the attribution on the deciding square rather than the distractor (step 2); the
model card of an image model names its data, network, training, limits and what the
monitor watches, and lets ``keizoku evidence`` pass (step 3).
"""

from __future__ import annotations

import base64
import glob
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import text_support
from keizoku.monitoring.log import segment_glob
from kzsupport import Server, need_module

need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

SIDE, SQUARE = 16, 4
CORNERS = {"tl": (2, 2), "br": (10, 10)}  # the square that decides the class
DISTRACTORS = ((2, 10), (10, 2))  # top right, bottom left: in every image, either class
PER_CLASS = 60
MISLABELLED = 2  # hold-out images per class given the other class's label


def square_image(label: str, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """A noisy dark image with the class's square and a distractor square, and where the
    distractor is."""
    img = np.clip(rng.normal(0.1, 0.05, (SIDE, SIDE)), 0, 1)
    r, c = CORNERS[label]
    img[r : r + SQUARE, c : c + SQUARE] = rng.uniform(0.75, 0.95)
    dr, dc = DISTRACTORS[int(rng.integers(2))]
    img[dr : dr + SQUARE, dc : dc + SQUARE] = rng.uniform(0.75, 0.95)
    return img, (dr, dc)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_folder(root: Path) -> None:
    """``root/<label>/*.png``: ``PER_CLASS`` images per class, plus ``MISLABELLED`` per class
    whose names put them in the hold-out, drawn as the other class."""
    from keizoku.deep.loop import holdout_mask

    rng = np.random.default_rng(0)
    for label in CORNERS:
        (root / label).mkdir(parents=True)
        for i in range(PER_CLASS):
            (root / label / f"{i:03d}.png").write_bytes(png(square_image(label, rng)[0]))
    for label, other in (("tl", "br"), ("br", "tl")):
        names = [f"odd{i:03d}.png" for i in range(200)]
        table = pd.DataFrame({"label": label, "path": names})
        held = [n for n, h in zip(names, holdout_mask(table, 0.2), strict=True) if h]
        for name in held[:MISLABELLED]:
            (root / label / name).write_bytes(png(square_image(other, rng)[0]))


def region_sum(amap: np.ndarray, corner: tuple[int, int]) -> float:
    """The attribution within one pixel of the square at ``corner``."""
    r, c = corner
    return float(amap[r - 1 : r + SQUARE + 1, c - 1 : c + SQUARE + 1].sum())


class Project(text_support.Project):
    pass


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("squares"))
    write_folder(p.root / "squares")
    assert p.run("init", "squares", "--target", "corner").code == 0
    spec_file = p.root / "keizoku.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["images"] |= {"epochs": 30, "patience": 30, "channels": [8]}  # patience: no early stop
    spec_file.write_text(yaml.safe_dump(spec))
    res = p.run("train", "--json", "--max-trials", "1")
    assert res.code == 0, res.text
    trained = json.loads(res.out.strip().splitlines()[-1])
    assert trained["state"] == "champion", trained
    yield p


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    """One server for the module; the last test stops it to flush the prediction log."""
    srv = Server(project.root, env=project.env).wait_ready()
    try:
        yield srv
    finally:
        srv.stop()


def fresh(n: int, seed: int) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """``n`` new images (label, pixels, distractor corner), classes alternating."""
    rng = np.random.default_rng(seed)
    labels = [list(CORNERS)[i % 2] for i in range(n)]
    return [(label, *square_image(label, rng)) for label in labels]


def test_forward_both_is_predict_proba_and_embed_in_one_pass(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keizoku.registry.models import load_model

    monkeypatch.setenv("KEIZOKU_HOME", str(project.home))
    cnn = load_model("squares:1").cnn  # type: ignore[attr-defined]
    x = np.stack([img for _, img, _ in fresh(6, seed=9)]).astype(np.float32)
    proba, embedding = cnn.forward_both(x)
    assert np.array_equal(proba, cnn.predict_proba(x))
    assert np.array_equal(embedding, cnn.embed(x))
    assert embedding.shape == (6, cnn.hidden)


def test_the_attribution_falls_on_the_deciding_square(project: Project, server: Server) -> None:
    """40 new images through ``/explain-image``. Each map adds up to the log-odds gained
    over a black image; the square that decides the class holds most of that sum and most
    of the positive attribution, the equally bright distractor next to none of either."""
    images = fresh(40, seed=11)
    body = {"images": [{"name": f"n{i}.png", "data": base64.b64encode(png(img)).decode()}
                       for i, (_, img, _) in enumerate(images)]}  # fmt: skip
    res = server.client.post("/v1/models/squares/explain-image", json=body)
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["method"].startswith("integrated gradients")
    deciding, distractor, positive = [], [], []
    for (label, _, corner), ex in zip(images, out["explanations"], strict=True):
        assert ex["prediction"] == label, ex["probabilities"]
        amap = np.asarray(ex["attribution"]) * ex["scale"]
        assert amap.shape == (SIDE, SIDE)
        gained = ex["log_odds"] - ex["black_log_odds"]
        assert ex["total"] == pytest.approx(gained, rel=0.2, abs=0.2)  # adds up (16-step rule)
        deciding.append(region_sum(amap, CORNERS[label]) / amap.sum())
        distractor.append(region_sum(amap, corner) / amap.sum())
        pos = np.clip(amap, 0, None)
        positive.append(region_sum(pos, CORNERS[label]) / pos.sum())
    # each region is 36 of the 256 pixels (14 %); both squares are equally bright
    assert np.mean(deciding) >= 0.7 and abs(np.mean(distractor)) <= 0.15, (deciding, distractor)
    assert (np.asarray(deciding) > 0.5).mean() >= 0.9, deciding
    assert np.mean(positive) >= 0.45, positive


def test_explain_image_cli_prints_the_focus_and_writes_an_overlay(project: Project) -> None:
    label, img, _ = fresh(1, seed=21)[0]
    (project.root / "one.png").write_bytes(png(img))
    res = project.run("explain", "squares", "--image", "one.png", "--overlay", "heat.png")
    assert res.code == 0, res.text
    assert f"predicts '{label}'" in res.out, res.text
    found = re.search(r"centred at row ([0-9.]+), column ([0-9.]+) of 16x16", res.out)
    assert found, res.out
    with Image.open(project.root / "heat.png") as heat:
        assert heat.format == "PNG" and heat.size[0] == heat.size[1] >= SIDE * 4


def test_explain_row_on_an_image_model_points_to_image(project: Project) -> None:
    res = project.run("explain", "squares", "--row", '{"path": "one.png"}')
    assert res.code != 0
    assert "--image" in res.text, res.text
    both = project.run("explain", "squares", "--row", "{}", "--image", "one.png")
    assert both.code != 0 and "not both" in both.text, both.text


def test_report_shows_heat_maps_per_class_and_for_right_and_wrong_images(
    project: Project,
) -> None:
    res = project.run("report", "squares:1", "-o", "report.html")
    assert res.code == 0, res.text
    page = (project.root / "report.html").read_text()
    assert 'data-chart="attribution-class-0"' in page and 'data-chart="attribution-class-1"' in page
    right = re.findall(r'data-chart="attribution-right-\d+"', page)
    wrong = re.findall(r'data-chart="attribution-wrong-\d+"', page)
    assert len(right) >= 2 and len(wrong) >= 2, (len(right), len(wrong))
    assert page.count("data:image/png;base64,") == 2 + len(right) + len(wrong)
    assert "No importance was saved" not in page


def test_the_model_card_describes_the_image_model(project: Project) -> None:
    """The card (``model_card.md``, shown in the report) and ``keizoku evidence``: a card is
    what promotion requires, so an image version is no longer refused for lacking one."""
    card = next(project.home.rglob("model_card.md")).read_text()
    for words in (
        "| tl | ", "| br | ",  # images per class, training and hold-out
        "16x16 grayscale",
        "two blocks of two 3x3 convolutions (8 then 16 channels",
        "trained from scratch",
        "Epochs: at most 30",
        "rotation up to ±10°",
        "## Metrics (hold-out images (never trained on))", "| accuracy |",
        "## Learning curve", "| epoch | training loss | validation loss |",
        "It reads grayscale only",
        "It knows only the classes br, tl",
        "`emb_pc1` … `emb_pc4`", "`width`, `height`", "`brightness`",
    ):  # fmt: skip
        assert words in card, words
    counts = re.findall(r"\| (tl|br) \| (\d+) \| (\d+) \|", card)
    assert sum(int(a) + int(b) for _, a, b in counts) == 2 * (PER_CLASS + MISLABELLED)
    res = project.run("evidence", "squares:1")
    assert res.code == 0, res.text


def test_the_route_answers_and_logs_from_one_pass_what_two_passes_gave(
    project: Project, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probabilities answered and the ``emb_pc`` values logged are those of the model's
    public two-pass path (``predict_images``, then ``image_features`` computing the
    embedding again) on the same decoded images, to the last bit."""
    from keizoku.data.images import load_image
    from keizoku.registry.models import load_model

    images = fresh(3, seed=5)
    blobs = [png(img) for _, img, _ in images]
    files = [("image", (f"f{i}.png", b, "image/png")) for i, b in enumerate(blobs)]
    answer = server.client.post("/v1/models/squares/predict-image", files=files)
    assert server.stop() == 0, server.output()  # stopping flushes the prediction log
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]

    monkeypatch.setenv("KEIZOKU_HOME", str(project.home))
    model: Any = load_model("squares:1")
    decoded = np.stack([load_image(b, model.size, name="x", colour=model.colour) for b in blobs])
    proba = model.predict_images(decoded)
    features = model.image_features(decoded, [(SIDE, SIDE)] * len(blobs))  # embeds again
    for pred, row in zip(served, proba, strict=True):
        expected = {c: float(p) for c, p in zip(model.classes, row, strict=True)}
        assert pred["probabilities"] == expected
    logged = pd.concat(pd.read_parquet(f) for f in glob.glob(segment_glob("squares", project.home)))
    logged = logged.set_index("request_id").loc[[p["request_id"] for p in served]]
    pcs = [c for c in features.columns if c.startswith("emb_pc")]
    assert pcs == ["emb_pc1", "emb_pc2", "emb_pc3", "emb_pc4"]
    inputs = [json.loads(text) for text in logged["inputs"]]
    got = np.asarray([[row[c] for c in pcs] for row in inputs])
    assert np.array_equal(got, features[pcs].to_numpy()), (got, features[pcs])


def test_explain_image_refuses_a_file_that_is_not_an_image_before_any_model(
    tmp_path: Path,
) -> None:
    """The CLI checks the file as the route does (first bytes), before it looks the model up."""
    import os
    import subprocess

    from kzsupport import KEIZOKU_EXE

    (tmp_path / "x.png").write_text("hello")
    env = {**os.environ, "KEIZOKU_HOME": str(tmp_path / ".keizoku")}
    res = subprocess.run([KEIZOKU_EXE, "explain", "m", "--image", "x.png"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "x.png" in res.stderr and "PNG or JPEG" in res.stderr
