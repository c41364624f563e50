"""The project is found like git finds a repository (issue 12, item 3)."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import pytest
from cli_abalone import run, trained_abalone

from keizoku.errors import ExitCode


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_abalone(tmp_path_factory.mktemp("discovery") / "abalone")


def test_a_subfolder_uses_the_project_home_and_spec(project: Path) -> None:
    deep = project / "notebooks" / "week1"
    deep.mkdir(parents=True)
    res = run(deep, "-v", "models", "--json")
    assert res.code == 0, res.text
    assert [(r["model"], r["version"], r["state"]) for r in json.loads(res.out)] == [
        ("abalone", 1, "champion")
    ]
    home = (project / ".keizoku").resolve()
    assert f"home: {home} (found above {deep.resolve()})" in res.err
    assert f"store: sqlite:///{home / 'mlflow.db'}" in res.err
    assert f"spec: {(project / 'keizoku.yaml').resolve()}" in res.err
    assert not (deep / ".keizoku").exists()


def test_models_elsewhere_creates_nothing(tmp_path: Path) -> None:
    res = run(tmp_path, "models")
    assert res.code == 0, res.text
    assert res.text.startswith("No keizoku project here: the home would be")
    res = run(tmp_path, "models", "--json")
    assert (res.code, json.loads(res.out)) == (0, [])
    res = run(tmp_path, "models", "abalone")
    assert res.code == ExitCode.NOT_FOUND, res.text
    assert res.err.startswith("error: No registered model named 'abalone': no keizoku project")
    assert list(tmp_path.iterdir()) == []


def test_keizoku_home_wins_over_the_folder(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    res = run(project, "-v", "models", "--json", home=other)
    assert res.code == 0, res.text
    assert json.loads(res.out) == []
    assert f"home: {other.resolve()} (from KEIZOKU_HOME" in res.err


def test_ui_mlflow_prints_the_stock_command_on_the_store(project: Path) -> None:
    deep = project / "sub"
    deep.mkdir(exist_ok=True)
    res = run(deep, "ui", "mlflow", "--print", "--port", "5055")
    assert res.code == 0, res.text
    cmd = shlex.split(res.out)
    home = (project / ".keizoku").resolve()
    assert Path(cmd[0]).name == "mlflow" and cmd[1] == "ui"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{home / 'mlflow.db'}"
    assert cmd[cmd.index("--default-artifact-root") + 1] == (home / "artifacts").as_uri()
    assert cmd[cmd.index("--port") + 1] == "5055"


def test_ui_mlflow_without_a_project_says_so(tmp_path: Path) -> None:
    res = run(tmp_path, "ui", "mlflow", "--print")
    assert res.code == ExitCode.USAGE, res.text
    assert res.err.startswith("error: No keizoku store at")
    assert list(tmp_path.iterdir()) == []


def test_serve_on_a_busy_port_exits_2_naming_the_port(project: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        res = run(project, "serve", "--port", str(port))
    assert res.code == ExitCode.USAGE, res.text
    assert res.err.strip() == (
        f"error: --port {port} is already in use on 127.0.0.1 (another `keizoku serve`?). "
        "Pass a free port with --port N, or stop the process that holds it."
    )
