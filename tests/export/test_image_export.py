"""The image CNN in the edge bundle, through the real executable: an image project is
trained on generated PNGs (bars: horizontal, vertical or a cross; 10 high × 12 wide, so
height and width cannot be swapped unseen), exported (parity on the hold-out images), and
the bundle's runner, run in a subprocess without keizoku on its path, answers as
``keizoku predict`` does from a PNG, an ``.npy`` of pixels and a JSON list; RGB too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from export_support import bare_env, lean_runner_python, need_onnx_extra, run_runner
from keizoku.data.images import load_image
from kzsupport import free_port, need_module
from text_support import Project

need_onnx_extra()
need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

HEIGHT, WIDTH = 10, 12
PER_CLASS = 24
COLOURS = {"red": (200, 0, 0), "green": (0, 102, 0)}  # one luminance (ITU-R 601)


def write_bars(root: Path, seed: int = 0) -> list[Path]:
    """``root/<shape>/<i>.png``: a bright horizontal bar, vertical bar or cross on noise."""
    rng = np.random.default_rng(seed)
    paths = []
    for shape in ("horizontal", "vertical", "cross"):
        (root / shape).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.uniform(0, 60, (HEIGHT, WIDTH))
            row, col = rng.integers(2, HEIGHT - 2), rng.integers(2, WIDTH - 2)
            if shape in ("horizontal", "cross"):
                pixels[row - 1 : row + 1, :] = rng.uniform(180, 255)
            if shape in ("vertical", "cross"):
                pixels[:, col - 1 : col + 1] = rng.uniform(180, 255)
            path = root / shape / f"{i:03d}.png"
            Image.fromarray(pixels.round().astype(np.uint8), mode="L").save(path)
            paths.append(path)
    return paths


def write_colours(root: Path, seed: int = 0) -> list[Path]:
    """``root/<colour>/<i>.png``: red or green squares of one luminance (RGB tells them)."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = np.asarray(rgb, float) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, (6, 9, 3))
            path = root / name / f"{i:03d}.png"
            Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB").save(path)
            paths.append(path)
    return paths


def trained(root: Path, folder: str, target: str) -> Project:
    project = Project(root)
    init = project.run("init", folder, "--target", target)
    assert init.code == 0, init.text
    spec = yaml.safe_load((root / "keizoku.yaml").read_text())
    spec["images"].update(epochs=15, patience=15, channels=[6])  # small and quick
    (root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    train = project.run("train", "--json", "--max-trials", "1")
    assert train.code == 0, train.text
    return project


def export(project: Project, name: str, out: str, *args: str) -> tuple[int, Any, str]:
    res = project.run("export", name, "-o", out, "--json", *args)
    body = json.loads(res.out) if res.code == 0 else None
    return res.code, body, res.text


def runner(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m runner`` in the bundle, with no keizoku on the path."""
    return run_runner(Path(sys.executable), bundle, *args)


def scored(project: Project, name: str, paths: list[Path]) -> pd.DataFrame:
    """``keizoku predict`` on ``paths``: prediction and proba_<class> per image."""
    pd.DataFrame({"path": [str(p) for p in paths]}).to_csv(project.root / "new.csv", index=False)
    res = project.run("predict", "-m", f"{name}@champion", "new.csv", "-o", "scored.csv")
    assert res.code == 0, res.text
    return pd.read_csv(project.root / "scored.csv")


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("bars")
    write_bars(root / "bars")
    return trained(root, "bars", "shape")


@pytest.fixture(scope="module")
def bundle(bars: Project) -> tuple[Path, dict[str, Any]]:
    code, body, text = export(bars, "bars", "edge")
    assert code == 0, text
    return bars.root / "edge", body


def test_the_cnn_exports_with_parity_on_the_holdout_images(
    bundle: tuple[Path, dict[str, Any]],
) -> None:
    folder, body = bundle
    parity = body["parity"]
    assert parity["passed"] and parity["tolerance"] == 1e-4
    assert parity["max_abs_diff"] <= 1e-4 and parity["labels_equal"] == parity["rows"]
    assert 0 < parity["rows"] < 3 * PER_CLASS  # the hold-out, not every image
    schema = json.loads((folder / "schema.json").read_text())
    assert schema["image"]["shape"] == [HEIGHT, WIDTH]
    assert (
        schema["image"]["colour"] == "grayscale"
        and "divide by 255" in (schema["image"]["preprocessing"])
    )
    labels = json.loads((folder / "labels.json").read_text())["classes"]
    assert labels == ["cross", "horizontal", "vertical"]
    card = json.loads((folder / "card.json").read_text())
    assert card["members"] == [{"family": "image_cnn", "weight": 1}]


def test_models_shows_the_image_models_verified_export(
    bars: Project, bundle: tuple[Path, dict[str, Any]]
) -> None:
    _, body = bundle
    listed = bars.run("models", "bars", "--json")
    assert listed.code == 0, listed.text
    rows = {r["version"]: r for r in json.loads(listed.out)}
    assert rows[body["version"]]["export"] == ["onnx"]


def test_the_runner_answers_as_keizoku_predict(
    bars: Project, bundle: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, _ = bundle
    fresh = write_bars(tmp_path / "fresh", seed=1)[::PER_CLASS]  # one of each shape
    expected = scored(bars, "bars", fresh)
    labels = json.loads((folder / "labels.json").read_text())["classes"]
    for path, (_, want) in zip(fresh, expected.iterrows(), strict=True):
        pixels = load_image(path, (HEIGHT, WIDTH))
        np.save(tmp_path / "one.npy", pixels)
        (tmp_path / "one.json").write_text(json.dumps(pixels.tolist()))
        for source in (path, tmp_path / "one.npy", tmp_path / "one.json"):
            done = runner(folder, str(source))
            assert done.returncode == 0, done.stderr
            answer = json.loads(done.stdout)
            assert answer["prediction"] == want["prediction"], source
            for c in labels:
                assert answer["probabilities"][c] == pytest.approx(want[f"proba_{c}"], abs=1e-4)


def test_the_runner_scores_a_batch_and_gives_the_embedding(
    bars: Project,
    bundle: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = bundle
    paths = write_bars(tmp_path / "batch", seed=2)[::10]
    batch = np.stack([load_image(p, (HEIGHT, WIDTH)) for p in paths])
    np.save(tmp_path / "batch.npy", batch)
    done = runner(folder, str(tmp_path / "batch.npy"))
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    expected = scored(bars, "bars", paths)
    assert [a["prediction"] for a in answers] == expected["prediction"].tolist()
    probe = (
        "import json, sys, numpy as np, runner; "
        "print(json.dumps(runner.Bundle().embedding(np.load(sys.argv[1])).tolist()))"
    )
    shown = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "batch.npy")],
                           cwd=folder, env=bare_env(), capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    from keizoku.deep.images import ImageModel
    from keizoku.registry import load_model  # keizoku's own embedding, in this process

    monkeypatch.setenv("KEIZOKU_HOME", str(bars.home))
    model = load_model("bars@champion")
    assert isinstance(model, ImageModel)
    native = model.cnn.embed(np.load(tmp_path / "batch.npy"))
    embedding = np.asarray(json.loads(shown.stdout))
    assert embedding.shape[0] == len(paths) and embedding.shape[1] > 1
    np.testing.assert_allclose(embedding, native, atol=1e-4)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((WIDTH, HEIGHT)), f"expected [{HEIGHT}, {WIDTH}] (one image)"),
        (np.full((HEIGHT, WIDTH), 200.0), "expected [0, 1] (divide 0-255 values by 255)"),
        (np.zeros((2, HEIGHT, WIDTH, 3)), f"[N, {HEIGHT}, {WIDTH}] (a batch)"),
    ],
)
def test_the_runner_refuses_pixels_it_cannot_score(
    bundle: tuple[Path, dict[str, Any]], tmp_path: Path, pixels: np.ndarray, message: str
) -> None:
    folder, _ = bundle
    (tmp_path / "bad.json").write_text(json.dumps(pixels.tolist()))
    done = runner(folder, str(tmp_path / "bad.json"))
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
    assert f"send {HEIGHT}x{WIDTH} grayscale pixels scaled to [0, 1]" in done.stderr


def test_the_runner_needs_no_pillow_for_pixels(
    bars: Project, bundle: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """In a venv with only numpy and onnxruntime: pixels are scored as keizoku scores the
    image; a PNG is refused, naming Pillow and the ways around it."""
    folder, _ = bundle
    lean = lean_runner_python()
    probe = subprocess.run([str(lean), "-c", "import PIL"], env=bare_env(), capture_output=True)
    assert probe.returncode != 0, "Pillow is importable in the lean venv"
    path = write_bars(tmp_path / "lean", seed=3)[0]
    np.save(tmp_path / "one.npy", load_image(path, (HEIGHT, WIDTH)))
    done = run_runner(lean, folder, str(tmp_path / "one.npy"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prediction"] == scored(bars, "bars", [path])["prediction"][0]
    png = run_runner(lean, folder, str(path))
    assert png.returncode == 2 and "needs Pillow (pip install Pillow)" in png.stderr
    assert "send the pixels as an .npy file or a JSON list" in png.stderr


def test_int8_quantizes_the_convolutions_or_refuses_with_the_agreement(bars: Project) -> None:
    code, body, text = export(bars, "bars", "edge-int8", "--quantize", "int8")
    if code == 0:
        assert body["parity"]["quantize"] == "int8" and body["parity"]["agreement"] >= 0.99
        assert b"ConvInteger" in (bars.root / "edge-int8" / "model.onnx").read_bytes()
    else:
        assert code == 6 and "int8 quantization changes the label" in text, text
        assert not (bars.root / "edge-int8").exists()


def test_serving_an_image_model_from_onnx_is_refused_clearly(
    bars: Project, bundle: tuple[Path, dict[str, Any]]
) -> None:
    res = bars.run("serve", "--runtime", "onnx", "--port", str(free_port()), "--poll-interval", "0")
    assert res.code == 2, res.text
    assert "is an image model: keizoku serve --runtime onnx serves tabular models" in res.text


def test_an_rgb_cnn_exports_and_its_runner_reads_colour(tmp_path: Path) -> None:
    write_colours(tmp_path / "colours")
    project = trained(tmp_path, "colours", "colour")
    code, body, text = export(project, "colours", "edge")
    assert code == 0, text
    assert body["parity"]["max_abs_diff"] <= 1e-4
    folder = tmp_path / "edge"
    assert json.loads((folder / "schema.json").read_text())["image"]["shape"] == [6, 9, 3]
    fresh = write_colours(tmp_path / "fresh", seed=1)[::6]
    expected = scored(project, "colours", fresh)
    for path, want in zip(fresh, expected["prediction"], strict=True):
        done = runner(folder, str(path))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["prediction"] == want
