"""MLflow artifacts on S3-compatible storage (``KEIZOKU_ARTIFACT_ROOT=s3://…``): train →
register → verified load → serve → predict, against moto's S3 server on a loopback port
(a real HTTP server speaking the S3 protocol; docs/log.md says what it does not
prove). The real ``keizoku`` executable in subprocesses, a real server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keizoku.registry.models import MODEL_FILE
from kzsupport import KEIZOKU_EXE, REPO, Server, free_port

pytestmark = pytest.mark.slow

BUCKET, PREFIX, MODEL = "keizoku-artifacts", "team", "peng"


def _run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEIZOKU_EXE, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto S3 server, one bucket, and a project trained with its artifacts there."""
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (pip install 'keizoku[dev]')"
    )
    boto3 = pytest.importorskip("boto3", reason="boto3 is absent: pip install 'keizoku[s3]'")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    client = boto3.client("s3", endpoint_url=endpoint, **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        "region_name": "us-east-1"})  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    root = tmp_path_factory.mktemp("s3")
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", root / "penguins.csv")
    env = {**os.environ, **creds, "KEIZOKU_HOME": str(root / ".keizoku"), "COLUMNS": "200",
           "MLFLOW_S3_ENDPOINT_URL": endpoint,
           "KEIZOKU_ARTIFACT_ROOT": f"s3://{BUCKET}/{PREFIX}"}  # fmt: skip
    for args in (
        ["init", "penguins.csv", "--target", "species", "--name", MODEL],
        ["train", "--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1"],
    ):
        out = _run(root, env, *args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    try:
        yield {"root": root, "env": env, "client": client}
    finally:
        server.stop()


def _keys(client: Any) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_training_puts_every_artifact_in_the_bucket(s3: dict[str, Any]) -> None:
    keys = _keys(s3["client"])
    names = {k.rsplit("/", 1)[-1] for k in keys}
    assert all(k.startswith(f"{PREFIX}/{MODEL}/") for k in keys)
    assert MODEL_FILE in names and "reference.json" in names, names
    local = s3["root"] / ".keizoku" / "artifacts"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))


def test_predict_and_serve_load_the_verified_model_from_s3(s3: dict[str, Any]) -> None:
    root, env = s3["root"], s3["env"]
    out = _run(root, env, "predict", "-m", f"{MODEL}@champion", "penguins.csv", "-o", "p.csv")
    assert out.returncode == 0, out.stderr
    assert len((root / "p.csv").read_text().splitlines()) == 345  # header + 344 rows
    server = Server(root, env=env).wait_ready()
    try:
        row = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
               "body_mass_g": 3750.0, "island": "Torgersen", "sex": "male",
               "year": 2007}  # fmt: skip
        resp = server.client.post(f"/v1/models/{MODEL}/predict", json=row)
        assert resp.status_code == 200, resp.text
        assert resp.json()["prediction"] in {"Adelie", "Chinstrap", "Gentoo"}
    finally:
        assert server.stop() == 0


def test_an_object_changed_in_the_bucket_is_refused(s3: dict[str, Any]) -> None:
    """The sha256 recorded at registration is checked on the bytes downloaded from S3."""
    root, env, client = s3["root"], s3["env"], s3["client"]
    [key] = [k for k in _keys(client) if k.endswith("/" + MODEL_FILE)]
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=body + b"tampered")
    try:
        shutil.rmtree(root / ".keizoku" / "cache", ignore_errors=True)  # download again
        out = _run(root, env, "predict", "-m", f"{MODEL}@champion", "penguins.csv", "-o", "q.csv")
        assert out.returncode == 5, (out.stdout, out.stderr)  # IntegrityError
        assert "sha256" in out.stderr
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        shutil.rmtree(root / ".keizoku" / "cache", ignore_errors=True)


def test_an_s3_root_without_a_bucket_is_refused_before_training(tmp_path: Path) -> None:
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", tmp_path / "penguins.csv")
    env = {**os.environ, "KEIZOKU_HOME": str(tmp_path / ".keizoku"),
           "KEIZOKU_ARTIFACT_ROOT": "s3:///prefix"}  # fmt: skip
    out = _run(tmp_path, env, "init", "penguins.csv", "--target", "species", "--name", MODEL)
    assert out.returncode == 0, out.stderr
    out = _run(tmp_path, env, "train", "--budget", "30s", "--max-trials", "1")
    assert out.returncode == 2 and "KEIZOKU_ARTIFACT_ROOT" in out.stderr, out.stderr
