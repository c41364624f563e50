"""An image project through the loop, with the real executable, registry and server:
init on a folder of class subfolders → train (champion) → train again (gated on the common
hold-out) → serve ``/predict-image`` (multipart and base64 JSON, limits, prediction log).
The PNGs are written at test time from scikit-learn's bundled digits (3 classes × 30)."""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from keizoku.monitoring.log import segment_glob
from kzsupport import KEIZOKU_EXE, CliResult, Server, need_module

need_module("torch", reason="the image CNN needs torch: pip install 'keizoku[torch]'")

CLASSES = (0, 1, 7)
PER_CLASS = 30
SERVED: list[str] = []  # request ids answered, checked in the prediction log at the end


def write_pngs(root: Path) -> list[tuple[Path, str]]:
    """``root/<digit>/<i>.png`` for the first ``PER_CLASS`` digits of each of ``CLASSES``."""
    digits = load_digits()
    written = []
    for c in CLASSES:
        (root / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(digits.target == c)[:PER_CLASS]:
            path = root / str(c) / f"{i:04d}.png"
            pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(path)
            written.append((path, str(c)))
    return written


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".keizoku"
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(self.home)}

    def run(self, *args: str) -> CliResult:
        proc = subprocess.run([KEIZOKU_EXE, *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        return CliResult(proc)

    def train(self, *args: str) -> dict[str, Any]:
        res = self.run("train", "--json", *args)
        assert res.code in (0, 6), res.text
        body: dict[str, Any] = json.loads(res.out.strip().splitlines()[-1])
        body["_stderr"] = res.err
        return body


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("images"))
    write_pngs(p.root / "digits")
    init = p.run("init", "digits", "--target", "digit")
    assert init.code == 0, init.text
    assert "Images (folder): 3 classes (0 30, 1 30, 7 30), resized to 8x8 grayscale" in init.text
    spec = yaml.safe_load((p.root / "keizoku.yaml").read_text())
    assert spec["task"] == "multiclass" and spec["images"]["classes"] == ["0", "1", "7"]
    spec["images"].update(epochs=25, patience=25, channels=[8, 12])  # small and quick
    (p.root / "keizoku.yaml").write_text(yaml.safe_dump(spec))
    yield p


@pytest.fixture(scope="module")
def first(project: Project) -> dict[str, Any]:
    return project.train("--max-trials", "1")


@pytest.fixture(scope="module")
def server(project: Project, first: dict[str, Any]) -> Iterator[Server]:
    srv = Server(project.root, env=project.env).wait_ready()
    yield srv
    assert srv.stop() == 0, srv.output()


def _png(project: Project, digit: int) -> bytes:
    return sorted((project.root / "digits" / str(digit)).glob("*.png"))[0].read_bytes()


def _url(name: str = "digits") -> str:
    return f"/v1/models/{name}/predict-image"


def test_init_on_a_csv_of_paths_writes_an_image_spec(project: Project) -> None:
    pngs = sorted((project.root / "digits").rglob("*.png"))
    rows = [(str(p.relative_to(project.root)), p.parent.name) for p in pngs]
    pd.DataFrame(rows, columns=["file", "digit"]).to_csv(project.root / "list.csv", index=False)
    res = project.run("init", "list.csv", "--target", "digit", "--config", "list.yaml")
    assert res.code == 0, res.text
    images = yaml.safe_load((project.root / "list.yaml").read_text())["images"]
    assert images["source"] == "csv" and images["path_column"] == "file"
    assert images["counts"] == {"0": 30, "1": 30, "7": 30}


def test_first_version_is_the_champion_trained_on_the_images(first: dict[str, Any]) -> None:
    assert first["state"] == "champion" and first["input"] == "images"
    assert first["task"] == "multiclass" and first["classes"] == ["0", "1", "7"]
    assert len(first["trials"]) == 1 and first["trials"][0]["channels"] == 8
    # 3 well-separated digits: the CNN learns them well above chance (1/3)
    assert first["holdout_accuracy"] >= 0.6, first


def test_piped_training_prints_one_line_per_epoch(first: dict[str, Any]) -> None:
    """stderr is a pipe here: every epoch of the one trial is a line, in order, with its
    losses (25 epochs, patience 25: none stops early)."""
    found = re.findall(
        r"trial 1 \(8 channels\) epoch (\d+)/25: train loss [0-9.]+ · val loss [0-9.]+",
        first["_stderr"],
    )
    assert [int(e) for e in found] == list(range(1, 26)), first["_stderr"][-2000:]


def test_report_shows_the_holdout_metrics_and_the_epochs(
    project: Project, first: dict[str, Any]
) -> None:
    res = project.run("report", f"digits:{first['version']}", "-o", "digits.html")
    assert res.code == 0, res.text
    page = (project.root / "digits.html").read_text()
    assert "hold-out images (never trained on)" in page
    assert "Learning curve (image_cnn, 8 channels)" in page and "Epoch" in page
    assert "No metrics was saved" not in page and "No learning curve" not in page


def test_second_version_is_gated_on_the_common_holdout(
    project: Project, first: dict[str, Any]
) -> None:
    second = project.train("--max-trials", "2")
    assert second["version"] == first["version"] + 1 and len(second["trials"]) == 2
    assert second["state"] in ("challenger", "gated-fail")
    (check,) = second["gates"]["checks"]
    assert check["name"] == "metric" and "hold-out accuracy" in check["detail"]
    assert check["passed"] == (second["state"] == "challenger")
    assert check["value"] == pytest.approx(second["holdout_accuracy"])
    audit = (project.home / "audit" / "digits.jsonl").read_text().splitlines()
    actions = [json.loads(line)["action"] for line in audit]
    assert actions.count("register") == 2 and "gate" in actions


def test_predict_image_multipart_and_base64_agree(project: Project, server: Server) -> None:
    files = [("image", ("zero.png", _png(project, 0), "image/png")),
             ("image", ("seven.png", _png(project, 7), "image/png"))]  # fmt: skip
    multi = server.client.post(_url(), files=files)
    assert multi.status_code == 200, multi.text
    preds = multi.json()["predictions"]
    assert [p["name"] for p in preds] == ["zero.png", "seven.png"]
    assert all(set(p["probabilities"]) == {"0", "1", "7"} for p in preds)
    # The same two images as base64: the same batch, so the same computation. (A batch of
    # one and a batch of two may differ in float32's last bits, ~1e-11 on a probability
    # of 1e-6, more than approx's relative 1e-6 allows; which weights show it depends on
    # the training's thread count.)
    body = {"images": [{"name": f"{name}.png", "data": base64.b64encode(_png(project, d)).decode()}
                       for name, d in (("zero", 0), ("seven", 7))]}  # fmt: skip
    as_json = server.client.post(_url(), json=body)
    assert as_json.status_code == 200, as_json.text
    both = as_json.json()["predictions"]
    assert [p["name"] for p in both] == ["zero.png", "seven.png"]
    for one, pred in zip(both, preds, strict=True):
        assert one["prediction"] == pred["prediction"]
        assert one["probabilities"] == pytest.approx(pred["probabilities"])
    SERVED.extend(p["request_id"] for p in [*preds, *both])


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        ("gif", 415, "Image anim.gif is not a PNG or JPEG"),
        ("corrupt", 422, "Image broken.png is corrupt"),
        ("big", 413, "Image huge.png is 5,000,001 bytes"),
        ("base64", 422, "Field 'images.0.data' (x.png) is not valid base64"),
        ("text", 415, "Content-Type 'text/plain' is not accepted"),
    ],
)
def test_bad_uploads_get_a_4xx_naming_the_file(
    server: Server, kind: str, status: int, words: str
) -> None:
    post = server.client.post
    if kind == "gif":
        res = post(_url(), files={"image": ("anim.gif", b"GIF89a" + b"\0" * 20)})
    elif kind == "corrupt":
        res = post(_url(), files={"image": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 40)})
    elif kind == "big":
        res = post(_url(), files={"image": ("huge.png", b"\x89PNG" + b"\0" * (5_000_001 - 4))})
    elif kind == "base64":
        res = post(_url(), json={"images": [{"name": "x.png", "data": "not base64!"}]})
    else:
        res = post(_url(), content=b"hello", headers={"content-type": "text/plain"})
    assert res.status_code == status, res.text
    assert words in res.json()["message"]


def test_inverted_images_are_served(project: Project, server: Server) -> None:
    """40 inverted digits (white background): the traffic the monitor must flag."""
    digits = load_digits()
    batch = []
    for i in range(40):
        pixels = 255 - (digits.images[i] * 255 / 16).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buf, format="PNG")
        batch.append({"name": f"inv{i}.png", "data": base64.b64encode(buf.getvalue()).decode()})
    res = server.client.post(_url(), json={"images": batch})
    assert res.status_code == 200, res.text
    SERVED.extend(p["request_id"] for p in res.json()["predictions"])


def test_served_images_are_in_the_prediction_log(project: Project, server: Server) -> None:
    assert SERVED, "the multipart/base64 test did not run"
    assert server.stop() == 0, server.output()  # the log is flushed on shutdown
    segments = glob.glob(segment_glob("digits", project.home))
    logged = pd.concat([pd.read_parquet(f) for f in segments])
    assert set(SERVED) <= set(logged["request_id"])
    assert len(logged) == len(SERVED)  # the refused uploads were not logged


def test_monitor_flags_the_brightness_of_served_images(project: Project) -> None:
    res = project.run("monitor", "digits", "--json")
    assert res.code == 10, res.text  # ExitCode.DRIFT
    report = json.loads(res.out)
    judged = {f["feature"]: f["drifted"] for f in report["features"]}
    drifted = {name for name, flag in judged.items() if flag}
    assert {"brightness", "dark_share"} <= drifted, report["features"]
    # the network's penultimate layer (its principal components) moves too; the size as
    # sent (8x8 like the training images) does not
    assert any(name.startswith("emb_pc") for name in drifted), report["features"]
    assert judged["width"] is False and judged["height"] is False, report["features"]


def test_retrain_fires_on_the_drift_and_gates_the_new_version(project: Project) -> None:
    res = project.run("retrain", "digits", "--json")
    assert res.code in (0, 6), res.text
    outcome = json.loads(res.out.strip().splitlines()[-1])
    (trigger,) = outcome["triggers"]
    assert trigger["kind"] == "drift" and "brightness" in trigger["sentence"], trigger
    assert outcome["status"] in ("passed", "failed") and outcome["version"] == 3
    assert outcome["gates"]["checks"][0]["name"] == "metric"
    audit = (project.home / "audit" / "digits.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["action"] == "retrain"
