"""``keizoku serve --runtime onnx`` through the real server: the same answers as the default
runtime, prediction log rows, hot swap on an alias move, and refusals at startup (a version
without a verified export, a tampered bundle)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from export_support import Models, need_onnx_extra
from kzsupport import KEIZOKU_EXE, Server, free_port, json_records

need_onnx_extra()

NAME = "exp-binary"
PREDICT = f"/v1/models/{NAME}/predict"


@pytest.fixture(scope="module")
def versions(models: Models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two versions exported (LightGBM v1, linear v2), a third without an export;
    v1 is the champion. Each is marked as having passed its gates (the registry tag the
    server checks), which the export tests' versions, registered directly, have not run."""
    from keizoku.export import export_onnx
    from keizoku.lifecycle.state import GATE_TAG
    from keizoku.registry.models import resolve, set_alias, set_tag

    root = tmp_path_factory.mktemp("serve-onnx")
    frame = models.frame("binary")
    refs = [models.ref("binary", f) for f in ("lightgbm", "linear", "random_forest")]
    for ref in refs[:2]:
        export_onnx(ref, root / ref.replace(":", "-"), frame)
    numbers = [resolve(ref)[1] for ref in refs]
    for number in numbers:
        set_tag(NAME, number, GATE_TAG, "passed")
    set_alias(NAME, "champion", numbers[0])
    return {"root": root, "refs": refs, "numbers": numbers, "frame": frame}


@pytest.fixture(scope="module")
def server(versions: dict[str, Any], registry_home: Path) -> Iterator[Server]:
    env = {**os.environ, "KEIZOKU_HOME": str(registry_home)}
    srv = Server(versions["root"], "--runtime", "onnx", "--poll-interval", "0.3", env=env)
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def _records(versions: dict[str, Any], n: int = 8) -> list[dict[str, Any]]:
    return json_records(versions["frame"].drop(columns=["target"]).head(n))


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``cond`` every 0.1 s until it holds (hot swaps and log flushes are asynchronous)."""
    for _ in range(int(timeout / 0.1)):
        if cond():
            return
        time.sleep(0.1)
    assert cond(), f"not met in {timeout:g} s"


def _assert_same_answers(ref: str, records: list[dict[str, Any]], answers: list[Any]) -> None:
    """The server's ONNX answers against the registered model's (the default runtime)."""
    from keizoku.data.labels import canonical
    from keizoku.registry import load_model

    model = load_model(ref)
    raw = model.predict_raw_records(records)
    assert [a["prediction"] for a in answers] == model.labels(raw)
    classes = [canonical(c) for c in model.classes or []]
    for answer, row in zip(answers, raw.tolist(), strict=True):
        assert answer["probabilities"].keys() == set(classes)
        for cls, p in zip(classes, row, strict=True):
            assert answer["probabilities"][cls] == pytest.approx(p, abs=1e-5)


def test_onnx_runtime_answers_as_the_registered_model_and_logs(
    server: Server, versions: dict[str, Any], registry_home: Path
) -> None:
    import duckdb

    records = _records(versions)
    resp = server.client.post(PREDICT, json=records)
    assert resp.status_code == 200, resp.text
    answers = resp.json()["predictions"]
    assert {a["version"] for a in answers} == {versions["numbers"][0]}
    _assert_same_answers(versions["refs"][0], records, answers)
    bad = server.client.post(PREDICT, json={**records[0], "band": 7})
    assert bad.status_code == 422 and "band" in bad.text  # the server's own validation
    ids = {a["request_id"] for a in answers}
    glob = str(registry_home / "predictions" / NAME / "*.parquet")

    def logged() -> set[str]:
        try:
            query = f"select request_id from read_parquet('{glob}')"
            rows = duckdb.sql(query).fetchall()  # type: ignore[union-attr]
        except duckdb.IOException:
            return set()
        return {r[0] for r in rows} & ids

    _wait(lambda: logged() == ids)


def test_onnx_runtime_swaps_when_the_champion_moves(
    server: Server, versions: dict[str, Any]
) -> None:
    from keizoku.registry.models import set_alias

    first, second = versions["numbers"][:2]
    onnx = versions["root"] / versions["refs"][1].replace(":", "-") / "model.onnx"
    original = onnx.read_bytes()
    onnx.write_bytes(original + b"\x00")  # v2's bundle tampered: the swap is refused
    failed = f'keizoku_model_swaps_total{{model="{NAME}",outcome="failed"}}'
    set_alias(NAME, "champion", second)
    try:
        _wait(lambda: failed in server.client.get("/metrics").text)
        assert server.client.get("/readyz").json()["models"][NAME]["champion"] == first
        onnx.write_bytes(original)  # restored: the next poll swaps v2 in
        _wait(lambda: server.client.get("/readyz").json()["models"][NAME]["champion"] == second)
        records = _records(versions, 5)
        answers = server.client.post(PREDICT, json=records).json()["predictions"]
        assert {a["version"] for a in answers} == {second}
        _assert_same_answers(versions["refs"][1], records, answers)
    finally:
        onnx.write_bytes(original)
        set_alias(NAME, "champion", first)
    _wait(lambda: server.client.get("/readyz").json()["models"][NAME]["champion"] == first)


def _serve(versions: dict[str, Any], registry_home: Path) -> subprocess.CompletedProcess[str]:
    """``keizoku serve --runtime onnx`` expected to refuse at startup (before listening)."""
    env = {**os.environ, "KEIZOKU_HOME": str(registry_home), "COLUMNS": "200"}
    cmd = [KEIZOKU_EXE, "serve", "--runtime", "onnx", "--port", str(free_port()),
           "--model", NAME, "--poll-interval", "0"]  # fmt: skip
    return subprocess.run(cmd, cwd=versions["root"], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_a_version_without_a_verified_export_is_refused_at_startup(
    versions: dict[str, Any], registry_home: Path
) -> None:
    from keizoku.registry.models import set_alias

    first, third = versions["numbers"][0], versions["numbers"][2]
    set_alias(NAME, "champion", third)
    try:
        done = _serve(versions, registry_home)
    finally:
        set_alias(NAME, "champion", first)
    message = " ".join(done.stderr.split())
    assert done.returncode == 3, done.stderr
    assert f"keizoku export {NAME}:{third} --format onnx" in message


@pytest.mark.parametrize("target", ["model.onnx", "manifest.json"])
def test_a_tampered_bundle_is_refused_at_startup(
    versions: dict[str, Any], registry_home: Path, target: str
) -> None:
    folder = versions["root"] / versions["refs"][0].replace(":", "-")
    path = folder / target
    original = path.read_bytes()
    path.write_bytes(original + (b"\x00" if target == "model.onnx" else b"\n"))
    try:
        done = _serve(versions, registry_home)
    finally:
        path.write_bytes(original)
    message = " ".join(done.stderr.split())
    assert done.returncode == 5, done.stderr
    assert "Refusing" in message and target in message and "Export it again" in message
    json.loads((folder / "manifest.json").read_text())  # restored for the other tests


def test_an_unknown_runtime_is_refused(versions: dict[str, Any], registry_home: Path) -> None:
    env = {**os.environ, "KEIZOKU_HOME": str(registry_home)}
    done = subprocess.run([KEIZOKU_EXE, "serve", "--runtime", "tflite", "--port",
                           str(free_port())], cwd=versions["root"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "--runtime 'tflite'" in done.stderr
    assert "python or onnx" in " ".join(done.stderr.split())
