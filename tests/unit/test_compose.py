"""docker-compose.yml and deploy/Dockerfile: the services exist, use our image and only real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from drukte.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_core_services_exist() -> None:
    assert {"kafka", "valkey", "worker", "api"} <= set(SERVICES)


def test_kafka_is_apache_kafka_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # a base64url UUID, as kafka-storage wants
    assert "zookeeper" not in COMPOSE_TEXT.lower()


def test_valkey_image() -> None:
    assert SERVICES["valkey"]["image"] == "valkey/valkey:8"


@pytest.mark.parametrize(("service", "command", "replicas"), [
    ("worker", ["worker"], 2),          # scaled out: two consumers in one group
    ("api", ["api", "--port", "8080"], None),
    ("simulator", ["simulate"], None),
])
def test_drukte_services_use_our_dockerfile(service: str, command: list[str], replicas: int | None) -> None:
    svc = SERVICES[service]
    assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert svc["command"] == command
    assert svc.get("deploy", {}).get("replicas") == replicas
    env = env_of(svc)
    assert env["DRUKTE_KAFKA_URL"] == "kafka://kafka:9092"
    assert env["DRUKTE_REDIS_URL"] == "redis://valkey:6379/0"
    assert env["DRUKTE_REGISTRY"] == "/app/deploy/registry/flanders.yaml"
    assert set(svc["depends_on"]) == {"kafka", "valkey"}
    assert (ROOT / "deploy" / "registry" / "flanders.yaml").is_file()


def test_simulator_only_in_the_demo_profile() -> None:
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    assert all("profiles" not in SERVICES[s] for s in ("kafka", "valkey", "worker", "api"))


def test_api_port_and_worker_metrics() -> None:
    assert "8080:8080" in SERVICES["api"]["ports"]
    assert "9102" in [str(p) for p in SERVICES["worker"]["expose"]]
    assert env_of(SERVICES["worker"])["DRUKTE_METRICS_PORT"] == "9102"
    assert "ports" not in SERVICES["worker"]  # two replicas cannot share a host port


@pytest.mark.parametrize("service", ["kafka", "valkey", "worker", "api"])
def test_healthchecks(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


def test_every_drukte_variable_is_a_setting() -> None:
    names = set(re.findall(r"\bDRUKTE_([A-Z0-9_]+)", COMPOSE_TEXT))
    names |= {k.removeprefix("DRUKTE_") for s in SERVICES.values() for k in env_of(s) if k.startswith("DRUKTE_")}
    assert {"KAFKA_URL", "REDIS_URL", "REGISTRY"} <= names
    unknown = {n for n in names if n.lower() not in Settings.model_fields}
    assert unknown == set()
    names_in_dockerfile = set(re.findall(r"\bDRUKTE_([A-Z0-9_]+)", DOCKERFILE.read_text()))
    assert {n for n in names_in_dockerfile if n.lower() not in Settings.model_fields} == set()


def test_dockerfile_runs_drukte_as_a_non_root_user() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    users = [ln.split(None, 1)[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users, "the Dockerfile needs a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert 'ENTRYPOINT ["drukte"]' in lines
    assert any(re.fullmatch(r"RUN pip install \.(\s.*)?", ln) for ln in lines)
    assert "COPY deploy/registry ./deploy/registry" in lines
