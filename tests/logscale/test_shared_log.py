"""Several servers, one log folder (``KEIZOKU_LOG_ROOT``): two real ``keizoku serve``
processes write per-server segments that never collide; ``keizoku monitor`` reads the
union, before and after ``keizoku log compact`` (real servers, the real CLI)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE, Server
from rollout_support import MODEL, frame, trained_project

pytestmark = pytest.mark.slow

PER_SERVER = 15


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with trained_project(tmp_path_factory.mktemp("shared")) as root:
        yield root


def _cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEIZOKU_EXE, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_two_servers_write_one_folder_and_monitor_reads_the_union(
    project: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-log"
    env = {**os.environ, "KEIZOKU_HOME": str(project / ".keizoku"), "COLUMNS": "200",
           "KEIZOKU_LOG_ROOT": str(shared)}  # fmt: skip
    rows = frame().drop(columns="species").head(PER_SERVER)
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in rows.to_dict("records")]
    servers = [Server(project, env=env), Server(project, env=env)]
    ids: list[str] = []
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:
            for record in records:
                resp = server.client.post(f"/v1/models/{MODEL}/predict", json=record)
                assert resp.status_code == 200, resp.text
                ids.append(resp.json()["request_id"])
    finally:
        codes = Server.stop_all(servers)
    assert codes == [0, 0]  # a graceful stop writes every acknowledged record
    folder = shared / "predictions" / MODEL
    names = sorted(p.name for p in folder.glob("seg-*.parquet"))
    writers = {name.split("-", 2)[2].rsplit("-", 1)[0] for name in names}  # host-pid
    assert len(writers) == 2, names
    assert not (project / ".keizoku" / "predictions" / MODEL).exists()  # nothing local

    def monitored() -> int:
        out = _cli(project, env, "monitor", MODEL, "--version", "1", "--json")
        assert out.returncode in (0, 10), out.stderr
        return int(json.loads(out.stdout)["n_rows"])

    assert len(set(ids)) == 2 * PER_SERVER
    assert monitored() == 2 * PER_SERVER
    out = _cli(project, env, "log", "compact", MODEL, "--older-than", "0s", "--grace", "0s",
               "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["files_after"] == 1
    assert [p.name[:4] for p in folder.glob("*.parquet")] == ["cmp-"]
    assert monitored() == 2 * PER_SERVER
