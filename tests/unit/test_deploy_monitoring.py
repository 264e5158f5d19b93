"""deploy/prometheus and deploy/grafana: promtool accepts and tests the rules; every Drukte metric they use exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from drukte.metrics import ApiMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
ALERTS: dict[str, Any] = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
ALERT_TESTS: dict[str, Any] = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
ALERT_NAMES = [rule["alert"] for rule in RULES]
# Series that do not come from drukte.metrics: Prometheus' own `up`, the process collector, the Kafka exporter.
OTHER_SERIES = {"up", "process_start_time_seconds", "kafka_consumergroup_lag"}


def promtool() -> str:
    """promtool on PATH or from Debian's prometheus package; a missing one fails the test (never a skip)."""
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.fail("promtool is missing: run `make promtool` (installs Debian's prometheus package) or put it on PATH")
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def exported_series() -> set[str]:
    """Every series name a scrape of a worker or the API shows for WorkerMetrics and ApiMetrics."""
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    ApiMetrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def drukte_names(text: str) -> set[str]:
    return set(re.findall(r"\bdrukte_[a-z0-9_]+", text))


def selected_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers not followed by `(`, outside strings, labels, ranges."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    words = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool", "inf", "nan"}
    return {m.group() for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e)
            if not e[m.end():].lstrip().startswith("(") and m.group().lower() not in words}


SERIES = exported_series()


# --- Prometheus ---------------------------------------------------------------------------------------------

def test_promtool_checks_the_rules() -> None:
    out = run_promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert f"SUCCESS: {len(RULES)} rules found" in out


def test_promtool_checks_the_config_and_its_rule_file() -> None:
    out = run_promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "is valid prometheus config file syntax" in out


def test_promtool_unit_tests_pass() -> None:
    # the alerts quiet first, then firing with their labels and rendered annotations (alerts.test.yml)
    out = run_promtool("test", "rules", str(PROMETHEUS / "alerts.test.yml"))
    assert "SUCCESS" in out


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not(alert: str) -> None:
    cases = [case for group in ALERT_TESTS["tests"] for case in group.get("alert_rule_test", [])
             if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"no promtool test fires {alert}"
    assert any(not case.get("exp_alerts") for case in cases), f"no promtool test shows {alert} quiet"
    firing = [a for case in cases for a in case.get("exp_alerts") or []]
    rule = RULES[ALERT_NAMES.index(alert)]
    assert all(a["exp_annotations"]["runbook"] == rule["annotations"]["runbook"] for a in firing)


def test_the_tests_cover_nothing_but_real_alerts() -> None:
    tested = {case["alertname"] for group in ALERT_TESTS["tests"] for case in group.get("alert_rule_test", [])}
    assert tested == set(ALERT_NAMES)
    assert ALERT_TESTS["rule_files"] == ["alerts.yml"]


@pytest.mark.parametrize("rule", RULES, ids=ALERT_NAMES)
def test_alerts_use_only_metrics_the_code_exports(rule: dict[str, Any]) -> None:
    names = selected_names(rule["expr"])
    assert names, f"{rule['alert']} selects no metric"
    assert drukte_names(rule["expr"]) <= names  # the parser sees every drukte_* name
    unknown = names - SERIES - OTHER_SERIES
    assert not unknown, f"{rule['alert']} uses metrics nothing exports: {sorted(unknown)}"


def test_unit_test_inputs_use_only_metrics_the_code_exports() -> None:
    series = [s["series"] for group in ALERT_TESTS["tests"] for s in group["input_series"]]
    names = {re.match(r"[a-zA-Z_:][\w:]*", s).group() for s in series}  # type: ignore[union-attr]
    assert names - SERIES - OTHER_SERIES == set()


def test_the_required_alerts_exist() -> None:
    # issue 9: worker down, consumer lag growing, watermark stuck, zone stale, sensors silent, rejected rate high,
    # store errors, API error rate and latency
    required = {"DrukteWorkerDown", "DrukteConsumerLagGrowing", "DrukteWatermarkStuck", "DrukteLiveDataStale",
                "DrukteSensorsSilent", "DrukteRejectionSpike", "DrukteWorkerRedisErrors", "DrukteApiRedisErrors",
                "DrukteApiServerErrors", "DrukteApiLatencyHigh"}
    assert required <= set(ALERT_NAMES)


def test_the_consumer_groups_in_the_lag_alert_are_the_default_ones() -> None:
    """The worker's Faust group (`app_id`) and its footfall ingest's own group, both by default name."""
    from drukte.settings import Settings

    defaults = Settings.model_construct()
    patterns = set(re.findall(r'consumergroup=~"([^"]+)"', (PROMETHEUS / "alerts.yml").read_text()))
    assert patterns == {f"{defaults.app_id}|{defaults.ingest_group}"}


def test_metric_name_parser() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(drukte_x_bucket{route!~"/a|b"}[5m]))) > 0.5 '
            "and on(instance) absent(up == 1) or vector(0)")
    assert selected_names(expr) == {"drukte_x_bucket", "up"}


# --- Grafana ------------------------------------------------------------------------------------------------

DASHBOARD_FILE = GRAFANA / "drukte.json"
DATASOURCES: dict[str, Any] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
PROVIDERS: dict[str, Any] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "drukte.yml").read_text())


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in as Prometheus would receive it."""
    return expr.replace("$__rate_interval", "5m").replace("$group", "drukte")


def test_dashboard_is_valid_json_with_a_stable_uid() -> None:
    d = dashboard()
    assert d["uid"] == "drukte-overview"
    assert d["title"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] and all(t["expr"].strip() for t in p["targets"]) for p in panels())


def test_every_panel_queries_the_provisioned_data_source() -> None:
    (source,) = DATASOURCES["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"  # the compose service
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": source["uid"]}, p["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in p["targets"]), p["title"]


@pytest.mark.parametrize("expr", queries())
def test_dashboard_queries_use_only_metrics_the_code_exports(expr: str) -> None:
    names = selected_names(as_promql(expr))
    assert names, f"selects no metric: {expr}"
    assert drukte_names(expr) <= names
    assert names - SERIES - OTHER_SERIES == set(), expr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses every query, as a recording rule of a throw-away rules file
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": as_promql(e)} for i, e in enumerate(queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(queries())} rules found" in run_promtool("check", "rules", str(path))


@pytest.mark.parametrize(("topic", "metric"), [
    ("throughput", "drukte_readings_in_total"),
    ("input messages", "drukte_messages_in_total"),
    ("consumer lag", "kafka_consumergroup_lag"),
    ("watermark lag", "drukte_watermark_lag_seconds"),
    ("latency percentiles (window to store)", "drukte_window_close_to_store_seconds_bucket"),
    ("latency percentiles (API)", "drukte_http_request_seconds_bucket"),
    ("rejected by reason", "drukte_rejected_total"),
    ("suppressed by reason", "drukte_windows_suppressed_total"),
    ("sensor health (few_sensors share)", "drukte_windows_suppressed_total"),
    ("live data age by city", "drukte_live_age_seconds"),
])
def test_dashboard_shows(topic: str, metric: str) -> None:
    assert any(metric in selected_names(as_promql(q)) for q in queries()), f"no panel shows {topic}"


def test_percentile_panels_use_histogram_quantile() -> None:
    quantiles = {float(q) for q in re.findall(r"histogram_quantile\((0\.\d+)", " ".join(queries()))}
    assert {0.5, 0.95, 0.99} <= quantiles


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    (provider,) = PROVIDERS["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/drukte.json:{provider['options']['path']}/drukte.json:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
