"""`drukte topics plan|apply`: the topics Drukte needs, with partitions, replication and retention (P4)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError

from drukte.errors import DrukteError, SettingsError
from drukte.kafka import bootstrap, security_options
from drukte.settings import Settings
from streams.topics import INPUT_TOPICS, OUTPUT_TOPICS

_TOPIC_ALREADY_EXISTS = 36
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source: set on this topic
Action = Literal["create", "created", "exists", "updated", "differs"]


@dataclass(frozen=True)
class PlannedTopic:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    name: str
    action: Action
    detail: str = ""


def plan(settings: Settings) -> list[PlannedTopic]:
    """Drukte's contract topics (CONTRACT.md §3). Faust creates its own internal topics (byzone, changelogs)."""
    return [PlannedTopic(spec.name, settings.partitions, settings.replication_factor, spec.configs())
            for spec in (*INPUT_TOPICS, *OUTPUT_TOPICS)]


def _human_ms(value: str | None) -> str:
    if value is None:
        return "broker default"
    ms = int(value)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


def format_plan(topics: list[PlannedTopic]) -> str:
    head = ("topic", "partitions", "replication", "retention.ms", "segment.ms", "retention")
    rows = [head] + [(t.name, str(t.partitions), str(t.replication), t.configs.get("retention.ms", "-"),
                      t.configs.get("segment.ms", "-"), _human_ms(t.configs.get("retention.ms"))) for t in topics]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def format_outcomes(outcomes: list[Outcome]) -> str:
    width = max(len(o.name) for o in outcomes)
    return "\n".join(f"{o.name.ljust(width)}  {o.action}{'  ' + o.detail if o.detail else ''}" for o in outcomes)


@dataclass(frozen=True)
class _Configs:
    values: dict[str, str]  # every config the broker reports, whatever its source
    on_topic: dict[str, str]  # only those set on the topic itself (AlterConfigs must keep them)


def _configs(entries: list[Any]) -> _Configs:
    """Parse DescribeConfigs entries (v0: is_default flag; v1+: config_source, 1 = set on the topic)."""
    values, on_topic = {}, {}
    for entry in entries:
        name, value, source = entry[0], entry[1], entry[3]
        if value is None:
            continue
        values[name] = value
        if (not source) if isinstance(source, bool) else source == _DYNAMIC_TOPIC_CONFIG:
            on_topic[name] = value
    return _Configs(values, on_topic)


async def _current_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, _Configs]:
    if not names:
        return {}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    out: dict[str, _Configs] = {}
    for response in responses:
        for error_code, error_message, _type, name, entries, *_ in response.resources:
            if error_code:
                msg = f"cannot read the configs of topic {name}: {error_message or error_code}"
                raise DrukteError(msg)
            out[name] = _configs(entries)
    return out


async def _alter(admin: AIOKafkaAdminClient, name: str, configs: dict[str, str]) -> None:
    try:
        responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)])
    except IncompatibleBrokerVersion as exc:
        msg = (f"this broker cannot change topic configs (AlterConfigs); set {configs} on {name} with the "
               "broker's own tools (kafka-configs.sh --alter --entity-type topics)")
        raise DrukteError(msg) from exc
    for response in responses:
        for error_code, error_message, *_ in response.resources:
            if error_code:
                msg = f"could not set the configs of topic {name}: {error_message or error_code}"
                raise DrukteError(msg)


async def apply(settings: Settings, topics: list[PlannedTopic], attempts: int = 10) -> list[Outcome]:
    """Create missing topics; bring retention of existing ones to the plan; report what cannot change.

    Running it again changes nothing. Partition counts and replication of existing topics are never changed
    (more partitions would move zones between partitions and their state; fewer is impossible).
    """
    if settings.kafka_url is None:
        msg = "DRUKTE_KAFKA_URL is not set: point it at the Kafka cluster whose topics to create"
        raise SettingsError(msg)
    options = security_options(settings)
    last: Exception | None = None
    for _ in range(attempts):  # Kafka may still be starting: only connecting is retried
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(settings.kafka_url), request_timeout_ms=10_000,
                                    **options)
        try:
            await admin.start()
        except KafkaError as exc:
            last = exc
            await admin.close()
            await asyncio.sleep(1.0)
            continue
        try:
            return await _apply(admin, topics)
        except KafkaError as exc:
            msg = f"Kafka at {settings.kafka_url} refused: {exc}"
            raise DrukteError(msg) from exc
        finally:
            await admin.close()
    msg = f"could not reach Kafka at {settings.kafka_url}: {last}"
    raise DrukteError(msg) from last


async def _apply(admin: AIOKafkaAdminClient, topics: list[PlannedTopic]) -> list[Outcome]:
    # list first: a metadata request naming a missing topic may auto-create it with the broker's defaults
    names = set(await admin.list_topics()) & {t.name for t in topics}
    existing = {t["topic"]: t for t in (await admin.describe_topics(sorted(names)) if names else [])}
    outcomes: dict[str, Outcome] = {}
    missing = [t for t in topics if t.name not in existing]
    if missing:
        response = await admin.create_topics([NewTopic(t.name, num_partitions=t.partitions,
                                                       replication_factor=t.replication, topic_configs=t.configs)
                                              for t in missing])
        for name, error_code, *rest in response.topic_errors:
            if error_code == _TOPIC_ALREADY_EXISTS:  # another process was quicker: fine
                outcomes[name] = Outcome(name, "exists", "created meanwhile by another process")
            elif error_code:
                detail = rest[0] if rest and rest[0] else f"error code {error_code}"
                msg = f"could not create topic {name}: {detail}"
                raise DrukteError(msg)
            else:
                outcomes[name] = Outcome(name, "created")
    present = [t for t in topics if t.name in existing]
    current = await _current_configs(admin, [t.name for t in present])
    for t in present:
        problems = []
        have_partitions = len(existing[t.name]["partitions"])
        if have_partitions != t.partitions:
            problems.append(f"has {have_partitions} partitions, the plan {t.partitions} (not changed)")
        replicas = {len(p["replicas"]) for p in existing[t.name]["partitions"]}
        if replicas and replicas != {t.replication}:
            problems.append(f"has replication {max(replicas)}, the plan {t.replication} (not changed)")
        have = current.get(t.name, _Configs({}, {}))
        wrong = {k: v for k, v in t.configs.items() if have.values.get(k) != v}
        if wrong:
            # AlterConfigs replaces the topic's whole config set: keep what is set there, change only ours.
            await _alter(admin, t.name, {**have.on_topic, **t.configs})
            changes = ", ".join(f"{k} {have.values.get(k, 'unset')} → {v}" for k, v in sorted(wrong.items()))
            outcomes[t.name] = Outcome(t.name, "differs" if problems else "updated",
                                       "; ".join([changes, *problems]))
        else:
            outcomes[t.name] = Outcome(t.name, "differs" if problems else "exists", "; ".join(problems))
    return [outcomes[t.name] for t in topics]


def run(command: str, settings: Settings, out: TextIO) -> int:
    """`plan` prints what `apply` would create; `apply` does it. Exit 1 when an existing topic differs."""
    topics = plan(settings)
    if command == "plan":
        print(format_plan(topics), file=out)
        return 0
    outcomes = asyncio.run(apply(settings, topics))
    print(format_outcomes(outcomes), file=out)
    return 1 if any(o.action == "differs" for o in outcomes) else 0
