"""deploy/k8s: valid Kubernetes objects (JSON schemas of kubernetes-validate), wired to real commands and settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from drukte.cli import build_parser
from drukte.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31"  # the oldest version still supported by most providers when this was written
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCS: list[dict[str, Any]] = [doc for name in KUSTOMIZATION["resources"]
                              for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCS if d["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    """Pod templates of the Deployments and the Job, by object name."""
    return {name: d["spec"]["template"]["spec"] for kind in ("Deployment", "Job") for name, d in objects(kind).items()}


SETTINGS_MAP: dict[str, str] = objects("ConfigMap")["drukte-settings"]["data"]
SECRET: dict[str, str] = objects("Secret")["drukte-credentials"]["stringData"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The DRUKTE_* environment a container gets from its envFrom sources and env entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= objects("ConfigMap")[source["configMapRef"]["name"]]["data"]
        if "secretRef" in source:
            env |= objects("Secret")[source["secretRef"]["name"]]["stringData"]
    env |= {e["name"]: e["value"] for e in container.get("env", [])}
    return env


def test_kustomization_lists_every_manifest() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == files


@pytest.mark.parametrize("doc", DOCS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in DOCS])
def test_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    # strict: unknown fields (a typo such as `readinesProbe`) are errors too
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_typo() -> None:
    text = (K8S / "worker.yaml").read_text().replace("readinessProbe:", "readinesProbe:", 1)
    broken = next(d for d in yaml.safe_load_all(text) if d["kind"] == "Deployment")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kinds_issue_9_asks_for() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    assert {("Deployment", "drukte-worker"), ("Deployment", "drukte-api"), ("Service", "drukte-api"),
            ("Service", "drukte-worker-metrics"), ("HorizontalPodAutoscaler", "drukte-api"),
            ("PodDisruptionBudget", "drukte-api"), ("ConfigMap", "drukte-registry"),
            ("Secret", "drukte-credentials")} <= kinds


def test_worker_replicas_do_not_exceed_the_partitions() -> None:
    replicas = objects("Deployment")["drukte-worker"]["spec"]["replicas"]
    assert 1 <= replicas <= int(SETTINGS_MAP["DRUKTE_PARTITIONS"])


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_containers_run_real_commands_with_valid_settings(name: str) -> None:
    for container in pod_specs()[name]["containers"]:
        assert container["image"] == "drukte"  # rewritten by the kustomization's `images`
        assert "command" not in container  # the image's ENTRYPOINT is `drukte`
        args = build_parser().parse_args(container["args"])
        assert callable(args.func)
        env = env_of(container)
        unknown = {k for k in env if not k.startswith("DRUKTE_") or k.removeprefix("DRUKTE_").lower()
                   not in Settings.model_fields}
        assert unknown == set()
        settings = Settings(**{k.removeprefix("DRUKTE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_password is not None


def test_passwords_are_in_the_secret_not_the_config_map() -> None:
    assert "DRUKTE_KAFKA_SASL_PASSWORD" in SECRET
    assert "DRUKTE_REDIS_URL" in SECRET  # it carries the Redis password
    assert not {k for k in SETTINGS_MAP if "PASSWORD" in k or k == "DRUKTE_REDIS_URL"}
    assert objects("Secret")["drukte-credentials"]["type"] == "Opaque"


def test_registry_config_map_is_the_shipped_registry_and_is_mounted_where_the_settings_say() -> None:
    registry = objects("ConfigMap")["drukte-registry"]["data"]
    assert registry == {"flanders.yaml": (ROOT / "deploy" / "registry" / "flanders.yaml").read_text()}
    mount_dir, file_name = SETTINGS_MAP["DRUKTE_REGISTRY"].rsplit("/", 1)
    assert file_name in registry
    for name in ("drukte-worker", "drukte-api"):
        spec = pod_specs()[name]
        volume = next(v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name") == "drukte-registry")
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts[volume] == mount_dir


def test_the_kafka_ca_file_is_mounted_where_the_settings_say() -> None:
    mount_dir, file_name = SETTINGS_MAP["DRUKTE_KAFKA_SSL_CAFILE"].rsplit("/", 1)
    assert file_name in objects("Secret")["drukte-kafka-ca"]["stringData"]
    for name in ("drukte-worker", "drukte-topics"):
        spec = pod_specs()[name]
        volume = next(v["name"] for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "drukte-kafka-ca")
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts[volume] == mount_dir


def container_port(deployment: str, name: str) -> int:
    (container,) = pod_specs()[deployment]["containers"]
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == name)


def test_api_probes_readyz_and_healthz_on_its_port() -> None:
    (api,) = pod_specs()["drukte-api"]["containers"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container_port("drukte-api", "http") == int(SETTINGS_MAP["DRUKTE_PORT"])
    assert objects("Deployment")["drukte-api"]["spec"]["template"]["metadata"]["annotations"][
        "prometheus.io/port"] == SETTINGS_MAP["DRUKTE_PORT"]


def test_worker_is_ready_when_its_metrics_port_answers() -> None:
    (worker,) = pod_specs()["drukte-worker"]["containers"]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container_port("drukte-worker", "metrics") == int(SETTINGS_MAP["DRUKTE_METRICS_PORT"])


@pytest.mark.parametrize("service", ["drukte-api", "drukte-worker-metrics"])
def test_services_select_pods_and_name_their_ports(service: str) -> None:
    svc = objects("Service")[service]
    (deployment,) = [d for d in objects("Deployment").values()
                     if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    for port in svc["spec"]["ports"]:
        container_port(deployment["metadata"]["name"], port["targetPort"])


def test_hpa_and_budgets_point_at_the_deployments() -> None:
    hpa = objects("HorizontalPodAutoscaler")["drukte-api"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "drukte-api"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    (api,) = pod_specs()["drukte-api"]["containers"]
    assert api["resources"]["requests"]["cpu"]  # utilisation needs a CPU request
    for name, pdb in objects("PodDisruptionBudget").items():
        labels = objects("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects("PodDisruptionBudget")["drukte-api"]["spec"]["minAvailable"] >= 1


def test_pods_run_as_the_images_non_root_user_without_privileges() -> None:
    uid = int(re.findall(r"^USER (\d+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)[-1])
    for name, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == uid, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]


def test_the_worker_state_dir_is_writable() -> None:
    # a read-only root filesystem: DRUKTE_DATA_DIR must be a mounted volume
    spec = pod_specs()["drukte-worker"]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    volume = mounts[SETTINGS_MAP["DRUKTE_DATA_DIR"]]
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == volume)
