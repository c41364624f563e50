"""The Dockerfile and .dockerignore (issue 20, containers): a multi-stage build whose runtime
stage is python:3.11-slim without compilers, runs as a non-root user with the home on a
volume and a HEALTHCHECK on /healthz, and installs PyTorch's CPU wheel only for the
deep-learning extras. The builder's install script runs here for real, with pip replaced
by a recorder. With a reachable Docker daemon the image is built and the stack started."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from kzsupport import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|cmake|make|python3-dev)\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current = "<global>"
    for word, rest in instructions(DOCKERFILE):
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip()
            found[current] = [(word, rest)]
        else:
            found.setdefault(current, []).append((word, rest))
    return found


def arg_default(name: str) -> str:
    for word, rest in instructions(DOCKERFILE):
        if word == "ARG" and rest.split("=")[0] == name:
            return rest.partition("=")[2].strip('"')
    raise AssertionError(f"no ARG {name}")


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]  # type: ignore[no-any-return]


def extras_with_torch() -> set[str]:
    table = extras()

    def has_torch(name: str) -> bool:
        for req in table[name]:
            if req.startswith("torch"):
                return True
            inner = re.fullmatch(r"keizoku\[(.+)\]", req)
            if inner and any(has_torch(e) for e in inner[1].split(",")):
                return True
        return False

    return {name for name in table if has_torch(name)}


def test_two_stages_on_the_slim_python_image() -> None:
    found = stages()
    assert list(found)[-2:] == ["builder", "runtime"]
    assert arg_default("PYTHON_IMAGE") == "python:3.11-slim"
    assert found["builder"][0][1].startswith("${PYTHON_IMAGE}")
    assert found["runtime"][0][1].startswith("${PYTHON_IMAGE}")
    copies = [rest for word, rest in found["runtime"] if word == "COPY"]
    assert copies == ["--from=builder /opt/keizoku /opt/keizoku"], "only the environment"


def test_the_runtime_stage_has_no_compiler_and_runs_unprivileged() -> None:
    runtime = stages()["runtime"]
    for word, rest in runtime:
        if word == "RUN":
            assert not COMPILERS.search(rest), rest
    users = [rest for word, rest in runtime if word == "USER"]
    assert len(users) == 1 and users[0].split(":")[0] not in ("0", "root")
    assert int(users[0].split(":")[0]) >= 1000
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    home = re.search(r"KEIZOKU_HOME=(\S+)", env)[1]  # type: ignore[index]
    assert f'VOLUME ["{home}"]' in DOCKERFILE
    assert re.search(r"PATH=/opt/keizoku/bin:", env)
    assert ("ENTRYPOINT", '["keizoku"]') in runtime


def test_the_healthcheck_asks_healthz() -> None:
    runtime = stages()["runtime"]
    check = next(rest for word, rest in runtime if word == "HEALTHCHECK")
    assert "HEALTHCHECK_URL" in check
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    url = re.search(r"HEALTHCHECK_URL=(\S+)", env)[1]  # type: ignore[index]
    assert url == "http://127.0.0.1:8000/healthz"
    cmd = next(rest for word, rest in runtime if word == "CMD")
    assert '"--port", "8000"' in cmd, "the default command listens where the check asks"


def test_torch_comes_from_the_cpu_index_pinned_as_pyproject_pins_it() -> None:
    assert arg_default("TORCH_INDEX_URL") == CPU_INDEX
    assert f"torch=={arg_default('TORCH_VERSION')}" in extras()["torch"]


def test_the_extras_named_by_default_exist() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    default = re.search(r"EXTRAS: \$\{KEIZOKU_EXTRAS:-([^}]*)\}", compose)[1]  # type: ignore[index]
    for name in {*arg_default("EXTRAS").split(","), *default.split(",")}:
        assert name in extras(), f"no extra {name!r} in pyproject.toml"


# ------------------------------------------------------ the builder's install script, run


def _install_script() -> str:
    run = [rest for word, rest in stages()["builder"] if word == "RUN" and "case" in rest]
    assert len(run) == 1
    return run[0]


def _run_install(tmp_path: Path, extras_arg: str, packages: str = "") -> list[list[str]]:
    bin_dir, dist = tmp_path / "bin", tmp_path / "dist"
    bin_dir.mkdir(exist_ok=True)
    dist.mkdir(exist_ok=True)
    (dist / "keizoku-0.1.0-py3-none-any.whl").touch()
    calls = tmp_path / "calls"
    calls.write_text("")
    for tool in ("pip", "keizoku"):
        stub = bin_dir / tool
        record = f'printf "%s\\0" {tool} "$@" >> {calls}\nprintf "\\n" >> {calls}\n'
        stub.write_text(f"#!/bin/sh\n{record}")
        stub.chmod(0o755)
    script = (
        _install_script()
        .replace("/opt/keizoku/bin/", f"{bin_dir}/")
        .replace("/build/dist", str(dist))
    )
    env = {"PATH": os.environ["PATH"], "EXTRAS": extras_arg, "EXTRA_PACKAGES": packages,
           "TORCH_INDEX_URL": arg_default("TORCH_INDEX_URL"),
           "TORCH_VERSION": arg_default("TORCH_VERSION")}  # fmt: skip
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)
    return [line.strip("\0").split("\0") for line in calls.read_text().splitlines() if line]


@pytest.mark.parametrize("extra", sorted(extras()))
def test_torch_is_installed_only_with_the_deep_learning_extras(tmp_path: Path, extra: str) -> None:
    calls = _run_install(tmp_path, f"postgres,{extra}")
    pips = [c[1:] for c in calls if c[0] == "pip"]
    wheel = str(tmp_path / "dist" / "keizoku-0.1.0-py3-none-any.whl")
    if extra in extras_with_torch():
        assert pips[0] == ["install", "--index-url", CPU_INDEX, "torch==2.13.0"]
        pips = pips[1:]
    assert pips == [["install", f"{wheel}[postgres,{extra}]"]]
    assert ["keizoku", "--help"] in calls, "the environment is checked before it is copied"


def test_no_extras_and_extra_packages(tmp_path: Path) -> None:
    calls = _run_install(tmp_path, "", "boto3>=1.34")
    wheel = str(tmp_path / "dist" / "keizoku-0.1.0-py3-none-any.whl")
    assert [c for c in calls if c[0] == "pip"] == [["pip", "install", wheel, "boto3>=1.34"]]


def test_the_deep_learning_extras_are_the_ones_the_script_names() -> None:
    pattern = re.search(r'case ",\$\{EXTRAS\}," in[\s\\]*([^)]*)\)', _install_script())
    assert pattern is not None
    named = {p.strip().strip("*,") for p in pattern[1].split("|")}
    assert named == extras_with_torch() and {"torch", "rag", "text"} <= named


# ------------------------------------------------------------------------ .dockerignore


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        anywhere = pattern.lstrip("!").startswith("**/")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        names = [p.rsplit("/", 1)[-1] for p in prefixes] if anywhere else prefixes
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            result = not negated
    return result


def test_the_build_context_holds_what_the_builder_copies_and_no_state() -> None:
    sources = [rest.split()[:-1] for word, rest in stages()["builder"] if word == "COPY"]
    for source in (s.rstrip("/") for group in sources for s in group):
        assert not ignored(source), source
        assert (REPO / source).exists(), source
    assert not ignored("src/keizoku/console/static/console.css")
    for path in (
        ".keizoku/mlflow.db",
        "project/.keizoku/auth.db",
        ".env",
        "src/.env",
        ".venv/bin/python",
        "tests/deploy/test_deploy_image.py",
        ".git/HEAD",
        "src/keizoku/__pycache__/cli.cpython-311.pyc",
        "examples/data/penguins.csv",
    ):
        assert ignored(path), path


# ------------------------------------------------------------ with a Docker daemon only


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: the image build is not smoke-tested")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        pytest.skip(f"no reachable Docker daemon ({reason}): the image build is not tested")
    return docker


@pytest.mark.slow
def test_the_image_builds_and_runs_as_its_user() -> None:
    docker = _docker()
    tag = "keizoku:deploy-test"
    subprocess.run([docker, "build", "-t", tag, str(REPO)], check=True, timeout=1800)
    version = subprocess.run([docker, "run", "--rm", tag, "--version"], capture_output=True,
                             text=True, check=True, timeout=120)  # fmt: skip
    assert version.stdout.startswith("keizoku ")
    uid = subprocess.run([docker, "run", "--rm", "--entrypoint", "id", tag, "-u"],
                         capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    assert uid.stdout.strip() == "10001"


@pytest.mark.slow
def test_compose_up_serves_the_store(tmp_path: Path) -> None:
    docker = _docker()
    env_file = tmp_path / "keizoku.env"
    env_file.write_text(
        "POSTGRES_PASSWORD=test-only-pg\nS3_ACCESS_KEY=test-only-access\n"
        f"S3_SECRET_KEY=test-only-secret\nKEIZOKU_MODEL=penguins\nKEIZOKU_PROJECT={tmp_path}\n"
    )
    shutil.copy(REPO / "examples" / "data" / "penguins.csv", tmp_path)
    tmp_path.chmod(0o777)  # the containers run as 10001: `init` writes keizoku.yaml here
    compose = [docker, "compose", "--project-name", "keizoku-test", "--env-file", str(env_file),
               "--file", str(REPO / "docker-compose.yml")]  # fmt: skip
    try:
        for args in (["up", "-d", "--wait", "postgres", "minio", "artifacts-bucket"],
                     ["run", "--rm", "keizoku", "keys", "create", "--role", "admin",
                      "--name", "smoke"],
                     ["run", "--rm", "keizoku", "init", "penguins.csv", "--target", "species"],
                     ["run", "--rm", "keizoku", "train", "--max-trials", "2"],
                     ["up", "-d", "--wait", "api-1", "api-2", "console"],
                     ["run", "--rm", "keizoku", "status", "penguins"]):  # fmt: skip
            subprocess.run([*compose, *args], check=True, timeout=1800)
    finally:
        subprocess.run([*compose, "down", "--volumes"], timeout=600)


# ------------------------------------------------------------------- the guide is true


def _guide_table(first_header: str) -> dict[str, str]:
    """{first cell: second cell} of the guide's table whose header starts ``first_header``."""
    text = (REPO / "docs" / "deployment.md").read_text()
    table = re.search(rf"^\| {first_header} \|.*\n\|[-|]+\|\n((?:\|.*\n)+)", text, re.M)
    assert table, first_header
    rows = [[c.strip().strip("`") for c in line.strip("|").split("|")]
            for line in table[1].splitlines()]  # fmt: skip
    return {row[0]: row[1] for row in rows}


def test_the_guide_lists_every_build_argument_with_its_default() -> None:
    args = {rest.split("=")[0]: rest.partition("=")[2].strip('"')
            for word, rest in instructions(DOCKERFILE) if word == "ARG"}  # fmt: skip
    documented = {name: "" if default == "empty" else default
                  for name, default in _guide_table("build argument").items()}  # fmt: skip
    assert documented == args


def test_the_guide_explains_every_variable_the_containers_set() -> None:
    documented = set()
    for cell in _guide_table("variable"):
        documented |= set(re.findall(r"[A-Z][A-Z0-9_]+", cell))
    env = " ".join(rest for word, rest in stages()["runtime"] if word == "ENV")
    names = set(re.findall(r"([A-Z][A-Z0-9_]+)=", env)) - {"PATH", "HOME"}
    names = {n for n in names if not n.startswith("PYTHON")}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    names |= set(compose["x-keizoku-env"])
    for path in (REPO / "deploy" / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("ConfigMap", "Secret"):
                names |= set(doc.get("data") or doc.get("stringData"))
    assert names - documented == set()
