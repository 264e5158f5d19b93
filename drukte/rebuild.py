"""`drukte rebuild-baselines`: the day histories behind the usual bands, from the published windows.

For when the worker's state is lost (its changelog topic deleted, a new app id): every window on
`busyness.zone.v1` is read back (`streams.rebuild`) and sent, per zone, to the worker's zone topic, where the
worker fills the history slots it lacks. Run it with the worker running; it is safe to run twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships neither types nor a py.typed marker

from drukte.errors import DrukteError
from drukte.kafka import bootstrap, security_options
from drukte.settings import Settings
from streams.rebuild import history_row
from streams.topics import BUSYNESS

CHUNK = 500  # history rows per message to the zone topic
QUIET_S = 3.0  # no record for this long at the end of every partition: all read (Tansu's end offsets are wrong)


@dataclass
class RebuildReport:
    read: int = 0
    rows: int = 0
    skipped: int = 0
    zones: int = 0
    elapsed_s: float = 0.0


async def run_rebuild(settings: Settings) -> RebuildReport:
    if settings.kafka_url is None:
        msg = "DRUKTE_KAFKA_URL is not set: point it at the Kafka the worker uses"
        raise DrukteError(msg)
    t0 = time.monotonic()
    report = RebuildReport()
    rows: dict[str, dict[int, list[int]]] = defaultdict(dict)  # zone → start → row: a window republished after a
    # crash is on the topic twice (at-least-once), and a reader may see a record twice
    window_ms = settings.window_s * 1000
    opts = security_options(settings)
    consumer = AIOKafkaConsumer(BUSYNESS.name, bootstrap_servers=bootstrap(settings.kafka_url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False, **opts)
    await consumer.start()
    try:
        with tqdm(desc="published windows read", unit=" windows", leave=False) as bar:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < QUIET_S:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                n = sum(len(records) for records in batch.values())
                if n:
                    quiet_since = time.monotonic()
                for records in batch.values():
                    for record in records:
                        row = _row(record.value, window_ms)
                        if row is None:
                            report.skipped += 1
                        else:
                            rows[row[0]][row[1][0]] = row[1]
                report.read += n
                bar.update(n)
    finally:
        await consumer.stop()
    topic = settings.zone_topic
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings.kafka_url), acks="all", **opts)
    await producer.start()
    try:
        if not await producer.partitions_for(topic):
            msg = f"topic {topic} does not exist: start `drukte worker` (app id {settings.app_id}) first"
            raise DrukteError(msg)
        for zone, by_start in sorted(rows.items()):
            zone_rows = [by_start[start] for start in sorted(by_start)]
            for i in range(0, len(zone_rows), CHUNK):
                await producer.send_and_wait(topic, orjson.dumps({"h": zone_rows[i:i + CHUNK]}),
                                             key=zone.encode())
            report.rows += len(zone_rows)
    finally:
        await producer.stop()
    report.zones = len(rows)
    report.elapsed_s = time.monotonic() - t0
    return report


def _row(value: bytes | None, window_ms: int) -> tuple[str, list[int]] | None:
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return history_row(obj, window_ms) if isinstance(obj, dict) else None


def format_report(report: RebuildReport) -> str:
    return (f"rebuild-baselines: {report.read:,} published records read, {report.rows:,} history rows sent for "
            f"{report.zones} zones, {report.skipped:,} skipped (other window length, DP city or malformed) in "
            f"{report.elapsed_s:.1f} s. The worker fills the slots it lacks: see drukte_history_restored_total.")


def main(settings: Settings) -> int:
    report = asyncio.run(run_rebuild(settings))
    print(format_report(report))
    return 0 if report.read else 1
