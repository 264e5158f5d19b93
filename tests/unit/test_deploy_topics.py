"""`drukte topics plan` and the Kafka security settings as Faust and aiokafka receive them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from agents.app import broker_credentials, create_app
from drukte.cli import main
from drukte.errors import DrukteError, SettingsError
from drukte.kafka import security_options, ssl_context
from drukte.settings import Settings, load_settings
from drukte.topics_cmd import format_plan, plan
from streams.topics import DEVICES, FOOTFALL, PAYMENTS

HOUR_MS = 3_600_000


# --- topics plan --------------------------------------------------------------------------------------------

def test_plan_has_every_contract_topic_with_the_settings_partitions_and_replication() -> None:
    topics = plan(Settings(partitions=12, replication_factor=3))
    assert [t.name for t in topics] == ["footfall.counts.v1", "payments.v1", "devices.detections.v1",
                                        "ingest.rejected.v1", "busyness.zone.v1", "spending.zone.v1",
                                        "devices.zone.v1"]
    assert {(t.partitions, t.replication) for t in topics} == {(12, 3)}


@pytest.mark.parametrize(("topic", "most_ms"), [
    (FOOTFALL.name, 7 * 24 * HOUR_MS),  # P4: counters ≤ 7 days
    (PAYMENTS.name, 24 * HOUR_MS),      # payments ≤ 24 h
    (DEVICES.name, HOUR_MS),            # devices ≤ 1 h
])
def test_plan_keeps_raw_inputs_short_and_rolls_segments_within_retention(topic: str, most_ms: int) -> None:
    (planned,) = [t for t in plan(Settings()) if t.name == topic]
    retention, segment = int(planned.configs["retention.ms"]), int(planned.configs["segment.ms"])
    assert 0 < retention <= most_ms
    assert 0 < segment <= retention  # a segment is deleted only once closed (P4)


def test_plan_output_lists_name_partitions_replication_retention_and_segment(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRUKTE_PARTITIONS", "6")
    monkeypatch.setenv("DRUKTE_REPLICATION_FACTOR", "3")
    monkeypatch.delenv("DRUKTE_KAFKA_URL", raising=False)  # plan needs no Kafka
    assert main(["topics", "plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["topic", "partitions", "replication", "retention.ms", "segment.ms", "retention"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["footfall.counts.v1"][:5] == ["footfall.counts.v1", "6", "3", "604800000", "86400000"]
    assert rows["devices.detections.v1"][1:5] == ["6", "3", "3600000", "600000"]
    assert rows["devices.detections.v1"][5:] == ["1", "h"]
    assert rows["busyness.zone.v1"][3:] == ["-", "-", "broker", "default"]


def test_plan_columns_line_up() -> None:
    lines = format_plan(plan(Settings())).splitlines()
    starts = {line.index("604800000") for line in lines if "604800000" in line}
    assert len(starts) == 1


def test_apply_without_kafka_url_says_what_to_set(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRUKTE_KAFKA_URL", raising=False)
    assert main(["topics", "apply"]) == 2
    assert "DRUKTE_KAFKA_URL is not set" in capsys.readouterr().err


# --- Kafka security -----------------------------------------------------------------------------------------

def sasl_ssl(**extra: Any) -> Settings:
    return Settings(kafka_url="kafka://k:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_username="drukte",
                    kafka_sasl_password="s3cret", **extra)


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    settings = Settings()
    assert security_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(settings) is None


def test_sasl_ssl_reaches_aiokafka_clients() -> None:
    opts = security_options(sasl_ssl(kafka_sasl_mechanism="SCRAM-SHA-256"))
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("drukte", "s3cret")
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_gets_the_same_security_as_aiokafka(protocol: str) -> None:
    # Faust turns broker_credentials into aiokafka arguments; they must equal what our own clients use
    sasl = protocol.startswith("SASL_")
    settings = Settings(kafka_url="kafka://k:9093", kafka_security_protocol=protocol,  # type: ignore[arg-type]
                        kafka_sasl_username="drukte" if sasl else None, kafka_sasl_password="pw" if sasl else None)
    faust_side = dict(credentials_to_aiokafka_auth(broker_credentials(settings)))
    ours = security_options(settings)
    assert (faust_side.pop("ssl_context", None) is not None) == ("ssl_context" in ours)
    ours.pop("ssl_context", None)
    assert faust_side == ours


def test_the_worker_app_carries_credentials_and_replication(tmp_path: Path) -> None:
    app = create_app(sasl_ssl(data_dir=tmp_path, replication_factor=3))
    assert app.conf.broker_credentials.username == "drukte"
    assert app.conf.topic_replication_factor == 3


def test_the_password_never_shows_in_settings_repr() -> None:
    assert "s3cret" not in repr(sasl_ssl())
    assert "s3cret" not in str(sasl_ssl().model_dump())


@pytest.mark.parametrize(("env", "says"), [
    # a SASL protocol without its user and password
    ({"DRUKTE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs DRUKTE_KAFKA_SASL_USERNAME and DRUKTE_KAFKA_SASL_PASSWORD"),
    # credentials that would silently not be used
    ({"DRUKTE_KAFKA_SASL_USERNAME": "u", "DRUKTE_KAFKA_SASL_PASSWORD": "p"}, "set it to SASL_SSL"),
    # a CA file without TLS
    ({"DRUKTE_KAFKA_SSL_CAFILE": "/etc/ca.pem"}, "set it to SSL or SASL_SSL"),
    # a protocol Kafka does not have
    ({"DRUKTE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "DRUKTE_KAFKA_SECURITY_PROTOCOL"),
    ({"DRUKTE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DRUKTE_KAFKA_SASL_USERNAME": "u",
      "DRUKTE_KAFKA_SASL_PASSWORD": "p", "DRUKTE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "DRUKTE_KAFKA_SASL_MECHANISM"),
])
def test_inconsistent_security_settings_are_refused_with_a_clear_message(
        env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=says):
        load_settings()


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(DrukteError, match="DRUKTE_KAFKA_SSL_CAFILE"):
        ssl_context(settings)


# --- topics apply on a broker that can alter configs (a fake admin client) -------------------------------------

class FakeResponse:
    def __init__(self, resources: list[tuple[Any, ...]] | None = None,
                 topic_errors: list[tuple[Any, ...]] | None = None) -> None:
        self.resources = resources or []
        self.topic_errors = topic_errors or []


class FakeAdmin:
    """Topics as {name: (partitions, {config: (value, source)})}; source 1 = set on the topic, 5 = default."""

    def __init__(self, topics: dict[str, tuple[int, dict[str, tuple[str, int]]]]) -> None:
        self.topics = topics
        self.altered: dict[str, dict[str, str]] = {}
        self.created: list[str] = []

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{"replicas": [1]}] * self.topics[n][0]} for n in names]

    async def describe_configs(self, resources: list[Any]) -> list[FakeResponse]:
        return [FakeResponse([(0, None, 2, r.name, [(k, v, False, src, False, []) for k, (v, src)
                                                  in self.topics[r.name][1].items()]) for r in resources])]

    async def alter_configs(self, resources: list[Any]) -> list[FakeResponse]:
        for r in resources:
            self.altered[r.name] = r.configs
        return [FakeResponse([(0, None, 2, r.name) for r in resources])]

    async def create_topics(self, new: list[Any]) -> FakeResponse:
        self.created += [t.name for t in new]
        return FakeResponse(topic_errors=[(t.name, 0, None) for t in new])


def test_apply_sets_the_planned_retention_and_keeps_other_topic_configs() -> None:
    import asyncio

    from drukte.topics_cmd import _apply

    planned = plan(Settings(partitions=3))
    fake = FakeAdmin({PAYMENTS.name: (3, {"retention.ms": ("604800000", 1), "min.insync.replicas": ("2", 1),
                                         "cleanup.policy": ("delete", 5)})})
    outcomes = {o.name: o for o in asyncio.run(_apply(fake, planned))}  # type: ignore[arg-type]
    assert outcomes[PAYMENTS.name].action == "updated"
    assert "retention.ms 604800000 → 86400000" in outcomes[PAYMENTS.name].detail
    # AlterConfigs replaces the set: the operator's min.insync.replicas stays, broker defaults are not pinned
    assert fake.altered[PAYMENTS.name] == {"retention.ms": "86400000", "segment.ms": "3600000",
                                           "min.insync.replicas": "2"}
    assert sorted(fake.created) == sorted(t.name for t in planned if t.name != PAYMENTS.name)


def test_apply_leaves_a_topic_alone_when_it_matches() -> None:
    import asyncio

    from drukte.topics_cmd import _apply

    planned = [t for t in plan(Settings(partitions=3)) if t.name == FOOTFALL.name]
    fake = FakeAdmin({FOOTFALL.name: (3, {k: (v, 1) for k, v in FOOTFALL.configs().items()})})
    assert [o.action for o in asyncio.run(_apply(fake, planned))] == ["exists"]  # type: ignore[arg-type]
    assert fake.altered == {}
    assert fake.created == []
