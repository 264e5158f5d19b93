"""The operations docs and the Prometheus files stay true to the metrics the code registers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from drukte.metrics import ApiMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Series that Prometheus or prometheus_client add on their own, or the Kafka exporter, not drukte.metrics.
STANDARD_SERIES = {"up", "process_start_time_seconds", "kafka_consumergroup_lag"}
_PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                 "offset", "bool", "inf", "nan"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _metrics() -> list[tuple[str, str, tuple[str, ...]]]:
    """(exposed name, type, label names) of every metric WorkerMetrics and ApiMetrics register."""
    registry = CollectorRegistry()
    objects = [*vars(WorkerMetrics(registry)).values(), *vars(ApiMetrics(registry)).values()]
    labels = {}
    for obj in objects:
        assert isinstance(obj, Counter | Gauge | Histogram)
        labels[obj._name] = tuple(obj._labelnames)
    out = []
    for family in registry.collect():
        # .collect() names a counter without its `_total`; Prometheus scrapes it with it.
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append((name, family.type, labels[family.name]))
    return sorted(out)


METRICS = _metrics()


def series_names() -> set[str]:
    """Every series name a scrape of the worker or the API can show for Drukte's own metrics."""
    out = set()
    for name, kind, _ in METRICS:
        base = name.removesuffix("_total") if kind == "counter" else name
        out |= {base + suffix for suffix in _SUFFIXES[kind]}
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, label names or durations)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group().lower() in _PROMQL_WORDS:
            continue
        names.add(m.group())
    return names


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS_FILE.read_text())
    assert isinstance(doc, dict)
    assert isinstance(doc.get("groups"), list)
    assert doc["groups"]
    rules = []
    for group in doc["groups"]:
        assert isinstance(group.get("name"), str)
        assert isinstance(group.get("rules"), list)
        assert group["rules"]
        rules += group["rules"]
    return rules


RULES = load_rules()


def test_both_metric_classes_register_metrics() -> None:
    names = {name for name, _, _ in METRICS}
    assert {"drukte_readings_in_total", "drukte_watermark_lag_seconds", "drukte_http_request_seconds"} <= names


@pytest.mark.parametrize(("name", "kind", "labels"), METRICS, ids=[m[0] for m in METRICS])
def test_operations_documents_every_metric_with_its_type_and_labels(
        name: str, kind: str, labels: tuple[str, ...]) -> None:
    rows = [line for line in OPERATIONS.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/operations.md needs one metrics table row for {name}"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == kind
    assert set(re.findall(r"`(\w+)`", cells[2])) >= set(labels)


def test_metric_name_extraction() -> None:
    expr = ('sum by (reason) (rate(foo_total{job="a", x=~"b.c"}[5m])) > 0.05 * scalar(sum(bar offset 1h))'
            " and on(instance) absent(up == 1) or vector(0)")
    assert metric_names(expr) == {"foo_total", "bar", "up"}


@pytest.mark.parametrize("rule", RULES, ids=[str(r.get("alert")) for r in RULES])
def test_alert_rule_shape(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Drukte[A-Za-z]+", rule["alert"])
    assert isinstance(rule["expr"], str)
    assert rule["expr"].strip()
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"].strip()
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])


@pytest.mark.parametrize("rule", RULES, ids=[str(r.get("alert")) for r in RULES])
def test_alert_expressions_use_only_existing_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']} selects no metric"
    unknown = names - series_names() - STANDARD_SERIES
    assert not unknown, f"{rule['alert']} uses metrics nobody exports: {sorted(unknown)}"


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", RULES, ids=[str(r.get("alert")) for r in RULES])
def test_operations_lists_the_alert_and_its_runbook_exists(rule: dict[str, Any]) -> None:
    assert f"`{rule['alert']}`" in OPERATIONS
    runbook = rule["annotations"].get("runbook", "")
    assert runbook.startswith("docs/operations.md#")
    anchors = {slug(line.lstrip("#")) for line in OPERATIONS.splitlines() if line.startswith("#")}
    assert runbook.split("#", 1)[1] in anchors


def test_prometheus_scrapes_the_compose_services_the_alerts_name() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["drukte-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"]
    assert str(worker["port"]) in compose["services"]["worker"]["expose"]
    assert compose["services"]["worker"]["environment"]["DRUKTE_METRICS_PORT"] == str(worker["port"])
    assert jobs["drukte-api"]["static_configs"][0]["targets"] == ["api:8080"]
    assert "8080:8080" in compose["services"]["api"]["ports"]
    used = set(re.findall(r'job="([^"]+)"', " ".join(r["expr"] for r in RULES)))
    assert used <= set(jobs)
