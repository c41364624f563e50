"""deploy/k8s (issue 20, containers): every manifest valid against the Kubernetes schemas
(kubernetes-validate ships them: no network), strict, on the oldest and newest version we
support; probes, security context, autoscaling, the loop's CronJob and placeholder Secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from kzsupport import REPO

K8S = REPO / "deploy" / "k8s"
VERSIONS = ("1.30.0", "1.37.0")  # podFailurePolicy onExitCodes.containerName: 1.30 and later
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for p in MANIFESTS for d in documents(p)}


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    if resource["kind"] == "CronJob":
        return resource["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return resource["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_probe() -> None:
    deployment = resources()[("Deployment", "keizoku-api")]
    container = pod_spec(deployment)["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = container["readinessProbe"]["httpGet"].pop(
        "path"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in MANIFESTS]


def test_kustomize_renders_the_whole_set() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize deploy/k8s` not checked")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
    assert rendered == set(resources())


def test_the_api_deployment_probes_and_resources() -> None:
    container = pod_spec(resources()[("Deployment", "keizoku-api")])["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    port = container["ports"][0]["containerPort"]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(port)]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_every_pod_runs_unprivileged_on_a_read_only_root() -> None:
    for (kind, name), resource in resources().items():
        if kind not in ("Deployment", "CronJob"):
            continue
        spec = pod_spec(resource)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/keizoku"} <= mounts, f"{name}: writable paths mounted"


def test_the_servers_and_the_loop_share_one_home() -> None:
    found = resources()
    claims = set()
    for kind, name in (("Deployment", "keizoku-api"), ("CronJob", "keizoku-loop")):
        spec = pod_spec(found[(kind, name)])
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volume = next(v for v in spec["volumes"] if v["name"] == mounts["/var/lib/keizoku"])
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    assert len(claims) == 1
    claim = found[("PersistentVolumeClaim", claims.pop())]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert found[("ConfigMap", "keizoku-config")]["data"]["KEIZOKU_HOME"] == "/var/lib/keizoku"


def test_the_service_and_autoscaler_target_the_servers() -> None:
    found = resources()
    deployment = found[("Deployment", "keizoku-api")]
    service = found[("Service", "keizoku-api")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = found[("HorizontalPodAutoscaler", "keizoku-api")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "keizoku-api"}  # fmt: skip
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


def test_the_loop_cronjob_runs_one_tick_and_never_retries_an_outcome() -> None:
    cronjob = resources()[("CronJob", "keizoku-loop")]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    container = pod_spec(cronjob)["containers"][0]
    assert container["args"][:3] == ["loop", "$(KEIZOKU_MODEL)", "--once"]
    fail_job = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert fail_job[0]["onExitCodes"]["values"] == [6, 10, 11]  # docs/lifecycle.md#exit-codes
    assert fail_job[0]["onExitCodes"]["containerName"] == container["name"]


def test_every_pod_reads_the_store_and_keys_from_secrets() -> None:
    found = resources()
    for kind, name in (("Deployment", "keizoku-api"), ("CronJob", "keizoku-loop")):
        container = pod_spec(found[(kind, name)])["containers"][0]
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"keizoku-config", "keizoku-store", "keizoku-artifacts"}
    assert "KEIZOKU_STORE" in found[("Secret", "keizoku-store")]["stringData"]
    config = found[("ConfigMap", "keizoku-config")]["data"]
    assert not any("PASSWORD" in k or "SECRET" in k for k in config)
