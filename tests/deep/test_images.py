"""Images: a folder of class subfolders read into arrays (with clear errors for bad files)
and the small CNN trained on it. The PNGs are written at test time from scikit-learn's
bundled digits (BSD-3-Clause), a few per class, so the repository ships no images."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from keizoku.data.images import (
    ImageLimits,
    image_stats,
    load_image,
    load_images,
    read_paths_csv,
    scan_folder,
)
from keizoku.deep.cnn import ImageCNN, _augment
from keizoku.errors import DataError, UserInputError
from kzsupport import need_module

need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

PER_CLASS = 40


def write_digits(root: Path, per_class: int = PER_CLASS) -> None:
    """``root/<digit>/<n>.png``: 8x8 grayscale PNGs of scikit-learn's digits."""
    digits = load_digits()
    seen: dict[int, int] = {}
    for img, label in zip(digits.images, digits.target, strict=True):
        n = seen.get(int(label), 0)
        if n >= per_class:
            continue
        seen[int(label)] = n + 1
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).round().astype(np.uint8), mode="L").save(
            folder / f"{n:03d}.png"
        )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    write_digits(root)
    return root


@pytest.fixture(scope="module")
def images(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = scan_folder(folder)
    return load_images(frame["path"].tolist(), (8, 8)), frame["label"].astype(int).to_numpy()


# ------------------------------------------------------------------- reading


def test_a_folder_of_class_subfolders_lists_every_image_with_its_label(folder: Path) -> None:
    frame = scan_folder(folder)
    assert len(frame) == 10 * PER_CLASS
    assert sorted(frame["label"].unique()) == [str(d) for d in range(10)]
    assert all(Path(p).parent.name == label for p, label in frame.itertuples(index=False))


def test_pixels_come_back_as_written(folder: Path) -> None:
    first = load_digits().images[0] / 16  # the first "0" of the set
    got = load_image(folder / "0" / "000.png", (8, 8))
    assert got.shape == (8, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, first, atol=1 / 255 + 1e-6)
    assert load_image(folder / "0" / "000.png", (16, 16)).shape == (16, 16)  # resized


def test_a_csv_of_paths_and_labels_reads_relative_paths_from_its_folder(folder: Path) -> None:
    listing = folder / "list.csv"
    pd.DataFrame({"file": ["0/000.png", "1/000.png"], "digit": [0, 1]}).to_csv(listing)
    frame = read_paths_csv(listing, path_column="file", label_column="digit")
    assert frame["label"].tolist() == ["0", "1"]
    assert load_images(frame["path"].tolist(), (8, 8)).shape == (2, 8, 8)
    with pytest.raises(UserInputError, match=r"has no column 'path' .* name the image path"):
        read_paths_csv(listing)


def test_a_folder_that_cannot_train_a_classifier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        scan_folder(tmp_path / "nowhere")
    with pytest.raises(UserInputError, match="has no PNG or JPEG files in class subfolders"):
        scan_folder(tmp_path)
    write_digits(tmp_path, per_class=1)
    for sub in tmp_path.iterdir():
        if sub.name != "3":
            for f in sub.iterdir():
                f.unlink()
    with pytest.raises(UserInputError, match=r"has one class \(3\)"):
        scan_folder(tmp_path)


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format=fmt)
    return buf.getvalue()


def test_bad_files_get_one_line_errors_that_name_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(_encoded("PNG")[:30])  # a truncated PNG
    with pytest.raises(DataError, match=r"^Image .*broken.png is corrupt or not an image"):
        load_image(corrupt, (8, 8))
    with pytest.raises(DataError, match="^Image scan.gif is GIF, not PNG or JPEG: convert"):
        load_image(_encoded("GIF"), (8, 8), name="scan.gif")
    with pytest.raises(DataError, match=r"^Image big.png is [\d,]+ bytes, over the 50-byte limit"):
        load_image(_encoded("PNG"), (8, 8), name="big.png", limits=ImageLimits(max_bytes=50))
    with pytest.raises(DataError, match=r"is 8x8 pixels, over the 10-pixel limit"):
        load_image(_encoded("PNG"), (8, 8), limits=ImageLimits(max_pixels=10))
    with pytest.raises(DataError, match=r"^Image the upload is empty \(0 bytes\)"):
        load_image(b"", (8, 8))
    jpeg = load_image(_encoded("JPEG"), (8, 8))
    assert abs(float(jpeg.mean()) - 128 / 255) < 0.02


def test_image_statistics_follow_brightness(images: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = images
    base, bright = image_stats(X), image_stats(np.clip(X + 0.3, 0, 1))
    assert list(base.columns) == ["brightness", "contrast", "dark_share"]
    assert (bright["brightness"] > base["brightness"]).all()
    assert (bright["dark_share"] <= base["dark_share"]).all()


# ----------------------------------------------------------------------- CNN


def test_augmentation_with_no_change_returns_the_batch() -> None:
    import torch

    x = torch.rand(4, 1, 8, 8)
    same = _augment(x, 0.0, 0.0, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    moved = _augment(x, 15.0, 0.2, 0.05, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved, x)


@pytest.fixture(scope="module")
def cnn(images: tuple[np.ndarray, np.ndarray]) -> ImageCNN:
    X, y = images
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    tr, va = order[:320], order[320:]
    return ImageCNN(max_epochs=40, patience=8, n_jobs=1).fit(X[tr], y[tr], eval_set=(X[va], y[va]))


def test_the_cnn_learns_digits_from_a_few_images_per_class(
    cnn: ImageCNN, images: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = images
    va = np.random.default_rng(0).permutation(len(X))[320:]
    assert (cnn.predict(X[va]) == y[va]).mean() > 0.85  # 32 images per class, 8x8 pixels
    val = [float("inf") if v is None else float(v) for _, _, v in cnn.history_]
    assert cnn.best_epoch_ == 1 + int(np.argmin(val))
    assert cnn.embed(X[:5]).shape == (5, cnn.hidden)


def test_the_same_seed_gives_the_same_cnn(images: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = images
    a, b = (ImageCNN(max_epochs=2, n_jobs=1).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(a.predict_proba(X[:20]), b.predict_proba(X[:20]))


def test_a_pickled_cnn_holds_numpy_only(
    cnn: ImageCNN, images: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = images
    blob = pickle.dumps(cnn, protocol=5)
    assert b"torch" not in blob
    np.testing.assert_array_equal(
        pickle.loads(blob).predict_proba(X[:10]), cnn.predict_proba(X[:10])
    )


def test_a_local_weights_file_is_the_starting_point(
    cnn: ImageCNN, images: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = images
    path = str(tmp_path / "start.npz")
    cnn.save_weights(path)
    again = ImageCNN(weights=path, max_epochs=1, lr=0.0, n_jobs=1).fit(X, y)
    saved = np.load(path)
    for key in ("body.0.weight", "head.1.weight"):  # lr 0: the weights stay as loaded
        np.testing.assert_array_equal(again.net_.state_dict()[key].numpy(), saved[key])


# -------------------------------------------------------------------- drift


def test_image_drift_flags_brightened_images_and_not_a_fresh_sample(
    cnn: ImageCNN, images: tuple[np.ndarray, np.ndarray]
) -> None:
    from keizoku.monitoring.images import image_columns, image_drift

    X, _ = images
    order = np.random.default_rng(1).permutation(len(X))
    ref, same = X[order[:200]], X[order[200:]]
    reference = image_columns(ref, cnn)
    assert list(reference.columns[:3]) == ["brightness", "contrast", "dark_share"]
    assert reference.shape[1] == 3 + cnn.hidden
    quiet = image_drift(reference, image_columns(same, cnn))
    assert not any(v.drifted for v in quiet[:3])  # the same digits: no statistic drifts
    assert sum(v.drifted for v in quiet) <= 0.05 * len(quiet)  # nor the embedding
    bright = image_drift(reference, image_columns(np.clip(same + 0.25, 0, 1), cnn))
    flagged = {v.feature for v in bright if v.drifted}
    assert {"brightness", "dark_share"} <= flagged
    assert any(f.startswith("emb_") for f in flagged)  # the network sees it too
