"""README's production section and docs/operations.md stay true to deploy/, the settings and the topics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drukte.settings import Settings
from streams.topics import INPUT_TOPICS, OUTPUT_TOPICS, TopicSpec

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
PRODUCTION = README.split("## Production\n", 1)[1].split("\n## ", 1)[0] if "## Production\n" in README else ""


def section(title: str) -> str:
    parts = OPERATIONS.split(f"\n## {title}\n", 1)
    assert len(parts) == 2, f"docs/operations.md has no section '## {title}'"
    return parts[1].split("\n## ", 1)[0]


def test_readme_production_section_has_the_compose_quick_start_and_links() -> None:
    assert "docker compose up -d --build" in PRODUCTION
    assert "--profile demo" in PRODUCTION
    assert "(deploy/k8s)" in PRODUCTION
    assert "(docs/operations.md)" in PRODUCTION
    assert (ROOT / "deploy" / "k8s").is_dir()


@pytest.mark.parametrize("title", ["Production with docker compose", "Kubernetes", "Kafka topics and security",
                                   "Sizing", "Scaling to many cities", "Backup and retention",
                                   "Upgrading without losing state", "Alerts", "Runbook"])
def test_operations_has_the_sections_issue_9_asks_for(title: str) -> None:
    assert section(title).strip()


UNITS_MS = {"minute": 60_000, "minutes": 60_000, "hour": 3_600_000, "hours": 3_600_000, "day": 86_400_000,
            "days": 86_400_000}


def to_ms(text: str) -> int | None:
    """`7 days` → 604800000; `broker default` → None."""
    if text == "broker default":
        return None
    number, unit = text.split()
    return int(number) * UNITS_MS[unit]


@pytest.mark.parametrize("spec", [*INPUT_TOPICS, *OUTPUT_TOPICS], ids=lambda s: s.name)
def test_the_retention_table_matches_the_topics(spec: TopicSpec) -> None:
    rows = [ln for ln in section("Kafka topics and security").splitlines()
            if ln.startswith("|") and f"`{spec.name}`" in ln]
    assert len(rows) == 1, f"one retention row for {spec.name}"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    segment = int(spec.configs()["segment.ms"]) if spec.retention_ms is not None else None
    assert [to_ms(cells[1]), to_ms(cells[2])] == [spec.retention_ms, segment]


def test_every_setting_the_operations_guide_names_exists() -> None:
    names = set(re.findall(r"\bDRUKTE_([A-Z0-9_]+)", OPERATIONS))
    assert {n for n in names if n.lower() not in Settings.model_fields} == set()


def test_every_deploy_file_the_guides_name_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|docs)/[\w./-]+)`", OPERATIONS + README))
    assert "deploy/k8s" in paths
    assert {p for p in paths if not (ROOT / p).exists()} == set()


def test_every_security_setting_is_in_the_operations_table() -> None:
    kafka = {f"DRUKTE_{n.upper()}" for n in Settings.model_fields if n.startswith("kafka_") and n != "kafka_url"}
    assert kafka == set(re.findall(r"`(DRUKTE_KAFKA_[A-Z_]+)`", section("Kafka topics and security")))
