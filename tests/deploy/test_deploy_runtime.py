"""What the containers rely on at run time (issue 20, containers): every probe and
healthcheck path answers 200 on a real ``keizoku serve``; a non-loopback server refuses to
start without a key, as the guide's start order says; and no secret value is committed in
the deployment files, only placeholders and variables."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kzsupport import KEIZOKU_EXE, REPO, Server, built_once, relocated_copy

K8S = REPO / "deploy" / "k8s"
DEPLOY_FILES = [
    REPO / "Dockerfile",
    REPO / "docker-compose.yml",
    *sorted(K8S.glob("*.yaml")),
    REPO / "deploy" / "compose.env.example",
    REPO / "docs" / "deployment.md",
]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|_STORE$", re.I)
PLACEHOLDERS = ("REPLACE_ME", "change-me")
PENGUIN = {
    "island": "Biscoe",
    "bill_length_mm": 45.1,
    "bill_depth_mm": 14.5,
    "flipper_length_mm": 215,
    "body_mass_g": 5000,
    "sex": "female",
    "year": 2008,
}


def probe_paths() -> dict[str, str]:
    """Where each probe or healthcheck asks: {where: path}."""
    found = {}
    dockerfile = (REPO / "Dockerfile").read_text()
    found["Dockerfile HEALTHCHECK"] = re.search(r"HEALTHCHECK_URL=http://[^/]+(/\S*)",
                                                dockerfile)[1]  # type: ignore[index]  # fmt: skip
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        for url in re.findall(r"http://127\.0\.0\.1:\d+(/\w*)", str(service.get("healthcheck"))):
            found[f"compose {name}"] = url
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            found[f"deployment {probe}"] = container[probe]["httpGet"]["path"]
    return found


def _train(root: Path) -> None:
    env = {**os.environ, "KEIZOKU_HOME": str(root / ".keizoku")}
    (root / "penguins.csv").write_bytes((REPO / "examples" / "data" / "penguins.csv").read_bytes())
    for args in (["init", "penguins.csv", "--target", "species"],
                 ["train", "--max-trials", "1", "--preset", "fast"]):  # fmt: skip
        out = subprocess.run([KEIZOKU_EXE, "-q", *args], cwd=root, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = relocated_copy(built_once("deploy-penguins", _train),
                          tmp_path_factory.mktemp("deploy-serve"))  # fmt: skip
    srv = Server(home).wait_ready()
    yield srv
    srv.stop()


def test_probes_are_found_in_every_file() -> None:
    where = set(probe_paths())
    assert {"Dockerfile HEALTHCHECK", "compose api-1", "compose api-2", "compose console",
            "deployment readinessProbe", "deployment livenessProbe"} <= where  # fmt: skip


def test_every_probe_path_answers_on_a_real_server(server: Server) -> None:
    answers = {where: server.client.get(path).status_code
               for where, path in probe_paths().items()}  # fmt: skip
    assert answers == dict.fromkeys(answers, 200)
    assert server.client.get("/readyz").json()["models"]["penguins"], "ready means loaded"
    assert server.client.get("/no-such-probe").status_code == 404  # the check can fail


def test_a_server_beyond_loopback_needs_a_key_first(tmp_path: Path) -> None:
    env = {**os.environ, "KEIZOKU_HOME": str(tmp_path / "home")}
    proc = subprocess.run([KEIZOKU_EXE, "serve", "--host", "0.0.0.0", "--port", "8000"],
                          capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert "keizoku keys create --role admin" in proc.stderr


# ------------------------------------------- the wheel the image's builder stage makes


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """keizoku as the builder installs it: a wheel built from the files the Dockerfile
    copies (and nothing else), installed apart from the source tree."""
    context = tmp_path_factory.mktemp("deploy-context")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, context)
    shutil.copytree(REPO / "src", context / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", "dist", "."],
                   cwd=context, check=True, timeout=600)  # fmt: skip
    site = context / "site"
    wheel = next((context / "dist").glob("keizoku-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=600)  # fmt: skip
    return site


def test_the_installed_wheel_serves_the_api_console_and_docs(
    wheel_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = relocated_copy(built_once("deploy-penguins", _train),
                          tmp_path_factory.mktemp("deploy-wheel"))  # fmt: skip
    env = {**os.environ, "KEIZOKU_HOME": str(home / ".keizoku"), "PYTHONPATH": str(wheel_site)}
    where = subprocess.run([KEIZOKU_EXE, "--version"], env=env, capture_output=True, text=True,
                           timeout=120, check=True)  # fmt: skip
    assert where.stdout.startswith("keizoku ")
    srv = Server(home, env=env).wait_ready()
    try:
        for path in ("/healthz", "/readyz", "/console/login", "/console/static/console.css",
                     "/docs", "/static/keizoku/swagger-ui.css"):  # fmt: skip
            assert srv.client.get(path).status_code == 200, path
        served = srv.client.post("/v1/models/penguins/predict", json=PENGUIN)
        assert served.status_code == 200, served.text
    finally:
        srv.stop()
    module = subprocess.run([sys.executable, "-c", "import keizoku; print(keizoku.__file__)"],
                            env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert module.stdout.startswith(str(wheel_site)), "the wheel's copy, not the source tree"


# ------------------------------------------------------------------ no committed secret


def _string_items(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _string_items(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _string_items(v, key)
    elif isinstance(node, str):
        yield key, node


def _only_variables_or_placeholders(value: str) -> bool:
    if any(p in value for p in PLACEHOLDERS):
        return True
    userinfo = re.match(r"\w+://[^:/@]+:([^@]+)@", value)
    if userinfo:
        return _only_variables_or_placeholders(userinfo[1])
    return bool(re.fullmatch(r"(\$\{[^}]+\}|\$\w+|\$\([^)]+\))+", value))


def test_compose_takes_every_secret_from_the_environment() -> None:
    config = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    checked = 0
    for key, value in _string_items(config):
        if SECRET_NAME.search(key):
            assert _only_variables_or_placeholders(value), f"{key}: {value}"
            checked += 1
    assert checked >= 6


def test_kubernetes_secrets_hold_placeholders_only() -> None:
    secrets = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
               if d and d["kind"] == "Secret"]  # fmt: skip
    assert secrets
    for secret in secrets:
        assert "data" not in secret, "base64 values hide what they hold"
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{secret['metadata']['name']}.{key}"


def test_the_env_example_holds_placeholders_only() -> None:
    for line in (REPO / "deploy" / "compose.env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_NAME.search(key):
            assert value == "change-me", line


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.name)
def test_no_credential_shaped_string_is_committed(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"\bkz_[A-Za-z0-9_-]{20,}", text), "an API key token"
    assert not re.search(r"\bAKIA[0-9A-Z]{16}\b", text), "an AWS access key id"
    assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text
    for m in re.finditer(r"\b\w+://([^:/@\s]+):([^@\s]+)@", text):
        placeholder = m[2] == "PASSWORD"  # the guide's USER:PASSWORD@HOST
        assert placeholder or _only_variables_or_placeholders(m[2]), f"a password in a URL: {m[0]}"
