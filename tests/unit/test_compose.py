"""docker-compose.yml and deploy/Dockerfile: valid Compose, our image, real commands, ports and settings only."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from drukte.cli import build_parser
from drukte.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
# Its `$schema` names draft 2019-09 with a URL jsonschema does not know; say the draft explicitly.
VALIDATOR = jsonschema.Draft201909Validator(SCHEMA)
DRUKTE_SERVICES = sorted(name for name, svc in SERVICES.items() if svc.get("image") == "drukte:local")


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    jsonschema.Draft201909Validator.check_schema(SCHEMA)
    errors = sorted(VALIDATOR.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_broken_service() -> None:
    # the vendored schema is strict enough to matter: an unknown key and a wrong type are both errors
    broken = {"services": {"api": {"image": "drukte:local", "replicas": 2, "ports": "8080:8080"}}}
    assert len(list(VALIDATOR.iter_errors(broken))) >= 2


def test_core_services_exist() -> None:
    assert {"kafka", "valkey", "topics", "worker", "api", "simulator", "kafka-exporter", "prometheus",
            "grafana"} <= set(SERVICES)
    assert DRUKTE_SERVICES == ["api", "simulator", "topics", "worker"]


def test_kafka_is_apache_kafka_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # a base64url UUID, as kafka-storage wants
    assert "zookeeper" not in COMPOSE_TEXT.lower()
    # topics come from `drukte topics apply` with their retention, never auto-created without it (P4)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_valkey_image_never_evicts() -> None:
    valkey = SERVICES["valkey"]
    assert valkey["image"] == "valkey/valkey:8"
    command = valkey["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


@pytest.mark.parametrize("service", DRUKTE_SERVICES)
def test_drukte_services_use_our_dockerfile_and_a_real_command(service: str) -> None:
    svc = SERVICES[service]
    assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    args = build_parser().parse_args(svc["command"])  # the Dockerfile's ENTRYPOINT is `drukte`
    assert callable(args.func)
    env = env_of(svc)
    assert env["DRUKTE_KAFKA_URL"] == "kafka://kafka:9092"
    assert env["DRUKTE_REDIS_URL"] == "redis://valkey:6379/0"
    assert env["DRUKTE_REGISTRY"] == "/app/deploy/registry/flanders.yaml"
    assert (ROOT / "deploy" / "registry" / "flanders.yaml").is_file()


@pytest.mark.parametrize(("service", "command", "replicas"), [
    ("worker", ["worker"], 2),          # scaled out: two consumers in one group
    ("api", ["api", "--port", "8080"], None),
    ("simulator", ["simulate"], None),
    ("topics", ["topics", "apply"], None),
])
def test_commands_and_replicas(service: str, command: list[str], replicas: int | None) -> None:
    assert SERVICES[service]["command"] == command
    assert SERVICES[service].get("deploy", {}).get("replicas") == replicas


@pytest.mark.parametrize("service", DRUKTE_SERVICES)
def test_environment_is_valid_settings(service: str) -> None:
    env = env_of(SERVICES[service])
    settings = Settings(**{k.removeprefix("DRUKTE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    assert settings.kafka_url == "kafka://kafka:9092"
    assert settings.replication_factor == 1  # a single broker cannot hold more copies


def test_every_drukte_variable_is_a_setting() -> None:
    # commented-out examples count too: an operator uncommenting them must get a real setting
    names = set(re.findall(r"\bDRUKTE_([A-Z0-9_]+)", COMPOSE_TEXT))
    names |= {k.removeprefix("DRUKTE_") for s in SERVICES.values() for k in env_of(s) if k.startswith("DRUKTE_")}
    assert {"KAFKA_URL", "REDIS_URL", "REGISTRY", "KAFKA_SASL_PASSWORD"} <= names
    assert {n for n in names if n.lower() not in Settings.model_fields} == set()
    names_in_dockerfile = set(re.findall(r"\bDRUKTE_([A-Z0-9_]+)", DOCKERFILE.read_text()))
    assert {n for n in names_in_dockerfile if n.lower() not in Settings.model_fields} == set()


def test_workers_start_after_the_topics_exist() -> None:
    for service in ("worker", "simulator"):
        assert SERVICES[service]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
        assert SERVICES[service]["depends_on"]["valkey"] == {"condition": "service_healthy"}
    assert SERVICES["topics"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    # a one-shot: restarting it forever after "a topic differs" (exit 1) would hide the problem
    assert re.fullmatch(r"no|on-failure:\d+", SERVICES["topics"]["restart"])
    assert set(SERVICES["api"]["depends_on"]) == {"kafka", "valkey"}


def test_simulator_only_in_the_demo_profile() -> None:
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    assert [name for name, svc in SERVICES.items() if "profiles" in svc] == ["simulator"]


def test_api_port_matches_its_setting_and_flag() -> None:
    api = SERVICES["api"]
    port = env_of(api)["DRUKTE_PORT"]
    assert api["command"][api["command"].index("--port") + 1] == port
    assert f"{port}:{port}" in api["ports"]
    assert str(port) in api["healthcheck"]["test"][-1]


def test_worker_metrics_port_is_what_prometheus_scrapes() -> None:
    worker = SERVICES["worker"]
    port = env_of(worker)["DRUKTE_METRICS_PORT"]
    assert port in [str(p) for p in worker["expose"]]
    assert "ports" not in worker  # two replicas cannot share a host port
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert str(jobs["drukte-worker"]["dns_sd_configs"][0]["port"]) == port
    assert jobs["drukte-api"]["static_configs"][0]["targets"] == [f"api:{env_of(SERVICES['api'])['DRUKTE_PORT']}"]
    exporter_port = SERVICES["kafka-exporter"]["expose"][0]
    assert jobs["kafka-exporter"]["static_configs"][0]["targets"] == [f"kafka-exporter:{exporter_port}"]


def test_prometheus_loads_the_rules_and_grafana_the_dashboard() -> None:
    prometheus = SERVICES["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = SERVICES["grafana"]
    for mount in grafana["volumes"]:
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"grafana mounts {source}, which does not exist"
    assert "GF_SECURITY_ADMIN_PASSWORD" in env_of(grafana)


def test_named_volumes_are_declared() -> None:
    used = {m.split(":", 1)[0] for svc in SERVICES.values() for m in svc.get("volumes", [])
            if not m.startswith((".", "/"))}
    assert used == set(COMPOSE["volumes"])


@pytest.mark.parametrize("service", ["kafka", "valkey", "worker", "api"])
def test_healthchecks(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


# --- Dockerfile ---------------------------------------------------------------------------------------------

def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(re.sub(r"\s+", " ", line))
    return stages


def test_dockerfile_is_multi_stage_and_the_final_stage_has_no_build_tools() -> None:
    build, final = dockerfile_stages()
    assert build[0] == "FROM python:3.11-slim AS build"
    assert final[0] == "FROM python:3.11-slim"
    assert any(re.match(r"RUN /opt/drukte/bin/pip install \.( |$)", ln) for ln in build)
    assert "COPY --from=build /opt/drukte /opt/drukte" in final
    final_text = "\n".join(final)
    for tool in ("pip install", "apt-get", "gcc", "build-essential", "setuptools"):
        assert tool not in final_text, f"the final stage must not run {tool}"
    # pip and setuptools leave the virtualenv before it is copied
    assert any("pip uninstall --yes pip setuptools" in ln for ln in build)


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    build = dockerfile_stages()[0]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in packages:
        assert f"COPY {package} ./{package}" in build, f"deploy/Dockerfile does not copy {package}/"


def test_dockerfile_runs_drukte_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = [ln.split(None, 1)[1] for ln in final if ln.upper().startswith("USER ")]
    assert users, "the Dockerfile needs a USER"
    user = users[-1].split(":")[0]
    assert user.isdigit()  # numeric, so Kubernetes' runAsNonRoot can check it
    assert user != "0"
    assert 'ENTRYPOINT ["drukte"]' in final
    assert "COPY deploy/registry ./deploy/registry" in final
    exposed = {p for ln in final if ln.startswith("EXPOSE ") for p in shlex.split(ln)[1:]}
    assert {str(Settings.model_fields["port"].default), str(Settings.model_fields["metrics_port"].default)} <= exposed


def test_build_context_sends_only_what_the_dockerfile_copies() -> None:
    # BuildKit reads deploy/Dockerfile.dockerignore: everything is excluded, then what COPY needs is let back in
    lines = [ln.strip() for ln in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "**"  # .venv, .git, .drukte and caches never reach the builder
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {src for stage in dockerfile_stages() for ln in stage if ln.startswith("COPY ") and "--from" not in ln
              for src in shlex.split(ln)[1:-1]}
    assert copied == allowed
