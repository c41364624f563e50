"""docker-compose.yml (issue 20, containers): valid against the Compose Specification's JSON
schema once interpolated as compose does, with the services, healthchecks and start order the
deployment guide describes, and no password of its own."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kzsupport import REPO

HERE = Path(__file__).parent
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
SCHEMA = HERE / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
KEIZOKU_SERVICES = ("api-1", "api-2", "console", "loop", "keizoku")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, $$.
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


class UnsetVariable(Exception):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Substitute variables as ``docker compose config`` does (values only, not keys)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"] or "", m["arg"] or ""
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise UnsetVariable(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return VARIABLE.sub(one, value)


def compose(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def config(example_env: dict[str, str]) -> dict[str, Any]:
    return compose(example_env)


@pytest.fixture(scope="module")
def validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_the_vendored_schema_is_the_one_recorded() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert (HERE / "LICENSE.compose-spec").read_text().lstrip().startswith("Apache License")


def test_compose_file_is_valid_against_the_compose_specification(
    config: dict[str, Any], validator: Any
) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(config)]  # fmt: skip
    assert errors == []


def test_the_schema_check_rejects_a_broken_file(config: dict[str, Any], validator: Any) -> None:
    broken = json.loads(json.dumps(config))
    broken["services"]["api-1"]["depends_on"]["postgres"]["condition"] = "service_up"
    broken["services"]["api-2"]["healthcheck"]["intervall"] = "10s"
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert "services/api-1/depends_on" in paths  # the condition is not one of compose's
    assert "services/api-2/healthcheck" in paths


def test_every_password_must_be_given(example_env: dict[str, str]) -> None:
    for name in ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY", "KEIZOKU_MODEL"):
        env = {k: v for k, v in example_env.items() if k != name}
        with pytest.raises(UnsetVariable, match=name):
            compose(env)


def test_services_the_guide_describes(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"postgres", "minio", "artifacts-bucket", *KEIZOKU_SERVICES} <= set(services)
    ports = []
    for name in ("api-1", "api-2", "console"):
        command = services[name]["command"]
        assert command[:3] == ["serve", "--host", "0.0.0.0"]
        port = command[command.index("--port") + 1]
        ports.append(port)
        assert services[name]["ports"] == [f"{port}:{port}"]
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"])
    assert len(set(ports)) == 3, "each server on its own port"
    assert services["loop"]["command"][:2] == ["loop", "penguins"]
    assert services["keizoku"]["profiles"] == ["tools"], "the tools service stays out of `up`"


def test_start_order_waits_for_healthy_dependencies(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in KEIZOKU_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["artifacts-bucket"]["condition"] == "service_completed_successfully"
    assert services["artifacts-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("postgres", "minio", "api-1", "api-2", "console"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_keizoku_services_share_the_store_and_run_unprivileged(config: dict[str, Any]) -> None:
    for name in KEIZOKU_SERVICES:
        service = config["services"][name]
        env = service["environment"]
        assert env["KEIZOKU_STORE"] == "postgresql://keizoku:change-me@postgres:5432/keizoku"
        assert env["KEIZOKU_ARTIFACT_ROOT"] == "s3://keizoku-artifacts/"
        assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert service["user"] == "10001:10001"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "keizoku-home:/var/lib/keizoku" in service["volumes"]


def test_the_bucket_command_escapes_its_variables_for_the_shell(config: dict[str, Any]) -> None:
    # `$$VAR` in the file reaches the container's shell as `$VAR`, not compose's value.
    command = config["services"]["artifacts-bucket"]["command"][0]
    assert '"$MINIO_ROOT_USER"' in command and '"store/$KEIZOKU_BUCKET"' in command
