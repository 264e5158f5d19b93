"""`drukte replay`: historical counts from a CSV file into footfall.counts.v1 (formats: streams.replayformat)."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships neither types nor a py.typed marker

from drukte.errors import DrukteError
from drukte.kafka import bootstrap, ensure_topics, security_options
from drukte.settings import Settings
from streams import replayformat as rf
from streams.registry import Registry
from streams.timegrid import format_ts
from streams.topics import FOOTFALL

BATCH_READINGS = 500
IN_FLIGHT = 64  # batches handed to the producer before waiting for their acknowledgements
# Skip reasons added here, where the clock and the settings are known: the worker would reject these.
FUTURE = "future"
ABSURD_COUNT = "absurd_count"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ReplayReport:
    """What a replay read and sent; `summary` includes the skips of this module (`future`, `absurd_count`)."""

    file: Path
    source: str
    summary: rf.Summary
    sent: int = 0  # readings acknowledged by the broker
    batches: int = 0
    elapsed_s: float = 0.0
    delimiter: str = ","
    cities: list[str] = field(default_factory=list)


def parse_speed(text: str) -> float:
    """`max` → infinity (as fast as the broker takes it), else simulated seconds per real second, above 0."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not speed > 0 or math.isinf(speed):
        msg = f"--speed must be `max` or a number above 0 (simulated seconds per real second), got {text!r}"
        raise DrukteError(msg)
    return speed


def read_text(path: Path, what: str = "the replay file") -> str:
    """The file's text: UTF-8 (a byte-order mark is dropped), else Windows-1252 as Excel writes it in Belgium."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {what} {path}: {exc.strerror or exc}; give the path of a CSV file"
        raise DrukteError(msg) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        msg = f"{path} is neither UTF-8 nor Windows-1252 text; save it as UTF-8 CSV"
        raise DrukteError(msg) from exc


def csv_rows(text: str) -> tuple[Iterator[list[str]], str]:
    """CSV rows of `text`, with the delimiter (`;`, `,` or tab) sniffed from the first line."""
    delimiter = rf.sniff_delimiter(text.split("\n", 1)[0])
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), delimiter


def read_sensor_map(path: Path) -> dict[str, str]:
    rows, _ = csv_rows(read_text(path, "the sensor map"))
    try:
        return rf.parse_sensor_map(rows)
    except rf.ReplayFormatError as exc:
        msg = f"{path}: {exc}"
        raise DrukteError(msg) from exc


def sensor_zones(registry: Registry, city: str | None) -> tuple[dict[str, str], set[str]]:
    """(sensor id → its city's time zone, for the sensors to replay; the registry's other sensors)."""
    if city is not None and registry.city(city) is None:
        valid = ", ".join(c.id for c in registry.cities)
        msg = f"unknown city {city!r}: the registry has {valid}"
        raise DrukteError(msg)
    zones = {s.id: c.timezone for c in registry.cities if city in (None, c.id) for z in c.zones for s in z.sensors}
    return zones, set(registry.sensors) - set(zones)


def source_of(path: Path) -> str:
    """`replay-<file stem slug>`, within the schema's 128 characters."""
    slug = rf.slugify(path.stem)
    return f"replay-{slug}"[:128].rstrip("-") if slug else "replay"


def _iso_utc(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pack(readings: Sequence[rf.ReplayReading], source: str, zones: dict[str, str],
         per_start: bool = False) -> Iterator[tuple[bytes, int, int]]:
    """Footfall batches (CONTRACT.md §3) of up to 500 readings, in the order given: (JSON, readings, last end ms).

    `batch_id` is `<source>/<n>` from 1, so a second replay of the same file sends the same batches; `sent_at`
    is the end of the batch's last reading; `start` is written in the sensor's local offset. `per_start`: a
    batch never holds two different starts, as a gateway sends each interval when it ends (paced replays).
    """
    starts: dict[tuple[int, str], str] = {}
    chunk: list[rf.ReplayReading] = []
    n = 0

    def batch() -> tuple[bytes, int, int]:
        out: list[dict[str, Any]] = []
        for r in chunk:
            tz = zones[r.sensor_id]
            start = starts.get((r.start_ms, tz))
            if start is None:
                start = starts[(r.start_ms, tz)] = format_ts(r.start_ms, tz)
            out.append({"sensor_id": r.sensor_id, "start": start, "seconds": r.seconds, "in": r.n_in, "out": r.n_out})
        end_ms = max(r.start_ms + r.seconds * 1000 for r in chunk)
        doc = {"source": source, "batch_id": f"{source}/{n}", "sent_at": _iso_utc(end_ms), "readings": out}
        return orjson.dumps(doc), len(chunk), end_ms

    for r in readings:
        if chunk and (len(chunk) >= BATCH_READINGS or (per_start and r.start_ms != chunk[-1].start_ms)):
            n += 1
            yield batch()
            chunk = []
        chunk.append(r)
    if chunk:
        n += 1
        yield batch()


def load_readings(
    path: Path,
    zones: dict[str, str],
    others: set[str],
    *,
    fmt: str,
    sensor_map: Path | None,
    now_ms: int,
    max_rate_per_s: int,
) -> tuple[list[rf.ReplayReading], rf.Summary, str]:
    """The file's replayable readings in time order, the parse summary, and the delimiter found.

    `zones`: sensor id → time zone of the sensors to replay; `others`: registry sensors not to replay.
    """
    mapping = read_sensor_map(sensor_map) if sensor_map is not None else None
    rows, delimiter = csv_rows(read_text(path))
    readings, summary = rf.parse(rows, timezones=zones, fmt=fmt, sensor_map=mapping,
                                 decimal_comma=delimiter == ";", other_city=others)
    kept: list[rf.ReplayReading] = []
    for r in readings:
        if r.start_ms + r.seconds * 1000 > now_ms:
            summary.skipped[FUTURE] += 1
        elif max(r.n_in, r.n_out) > r.seconds * max_rate_per_s:
            summary.skipped[ABSURD_COUNT] += 1
        else:
            kept.append(r)
    summary.readings = len(kept)
    kept.sort(key=lambda r: (r.start_ms, r.sensor_id))
    return kept, summary, delimiter


async def run_replay(
    settings: Settings,
    registry: Registry,
    path: Path,
    *,
    fmt: str = "auto",
    sensor_map: Path | None = None,
    speed: float = math.inf,
    city: str | None = None,
    clock: Callable[[], float] = time.time,
    progress: bool | None = None,
) -> ReplayReport:
    """Read `path`, and produce its readings to footfall.counts.v1 keyed by source; return what happened.

    `speed`: `inf` sends batches of 500 as fast as the broker acknowledges; otherwise one batch per start time
    waits until its readings' end is due at `speed` simulated seconds per real second, counted from the first
    reading's start.
    `progress`: a tqdm bar on stderr (None: only when stderr is a terminal). Readings ending after `clock()`
    are skipped as `future`. Problems with the file, the registry or the broker raise `DrukteError`.
    """
    t0 = time.perf_counter()
    zones, others = sensor_zones(registry, city)
    try:
        readings, summary, delimiter = load_readings(
            path, zones, others, fmt=fmt, sensor_map=sensor_map, now_ms=int(clock() * 1000),
            max_rate_per_s=settings.max_rate_per_s)
    except rf.ReplayFormatError as exc:
        msg = f"{path}: {exc}"
        raise DrukteError(msg) from exc
    report = ReplayReport(path, source_of(path), summary, delimiter=delimiter)
    report.cities = sorted({registry.city_of_zone[registry.sensors[sid].zone_id].id
                            for sid in {r.sensor_id for r in readings}})
    if readings:
        await _produce(settings, readings, zones, report, speed, progress)
    report.elapsed_s = time.perf_counter() - t0
    return report


async def _produce(settings: Settings, readings: list[rf.ReplayReading], zones: dict[str, str],
                   report: ReplayReport, speed: float, progress: bool | None) -> None:
    if settings.kafka_url is None:
        msg = "DRUKTE_KAFKA_URL is not set: point it at Kafka, or run `drukte up` for an embedded broker"
        raise DrukteError(msg)
    security = security_options(settings)
    await ensure_topics(settings.kafka_url, [FOOTFALL], settings.partitions, replication=settings.replication_factor,
                        options=security)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings.kafka_url), client_id="drukte-replay",
                                acks="all", linger_ms=5, max_batch_size=512 * 1024, **security)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        msg = f"the replay could not connect to Kafka at {settings.kafka_url}: {exc}"
        raise DrukteError(msg) from exc
    bar = tqdm(total=len(readings), unit=" readings", unit_scale=True, desc=report.file.name, leave=False,
               disable=None if progress is None else not progress)
    loop = asyncio.get_running_loop()
    start_real, start_sim = loop.time(), readings[0].start_ms
    pending: list[tuple[asyncio.Future[Any], int]] = []

    async def settle() -> None:
        try:
            for fut, n in pending:
                await fut
                report.sent += n
                report.batches += 1
                bar.update(n)
        except KafkaError as exc:
            msg = f"the replay could not deliver batches to {FOOTFALL.name}: {exc}"
            raise DrukteError(msg) from exc
        pending.clear()

    try:
        for value, n, end_ms in pack(readings, report.source, zones, per_start=not math.isinf(speed)):
            if not math.isinf(speed):
                await settle()  # paced: each batch is delivered when it is due
                await asyncio.sleep(max(0.0, start_real + (end_ms - start_sim) / 1000 / speed - loop.time()))
            pending.append((await producer.send(FOOTFALL.name, value=value, key=report.source.encode()), n))
            if len(pending) >= IN_FLIGHT:
                await settle()
        await settle()
    finally:
        bar.close()
        await producer.stop()


def format_report(report: ReplayReport) -> str:
    """The final summary: always printed, also without a terminal."""
    s = report.summary
    interval = f"{s.interval_s // 60} min" if s.interval_s % 3600 else f"{s.interval_s // 3600} h"
    delim = {",": "comma", ";": "semicolon", "\t": "tab"}.get(report.delimiter, repr(report.delimiter))
    rate = report.sent / report.elapsed_s if report.elapsed_s > 0 else 0.0
    lines = [
        f"replay {report.file.name}: {s.format} format, {delim}-separated, {interval} interval, "
        f"{s.date_order or 'no'} dates",
        f"  rows      {s.rows}",
        f"  readings  {report.sent} sent in {report.batches} batches to {FOOTFALL.name} as {report.source}"
        + (f" ({', '.join(report.cities)})" if report.cities else ""),
        f"  missing   {s.missing} blank values (missing data, no reading)",
        "  skipped   " + (", ".join(f"{n} {reason}" for reason, n in s.skipped.most_common()) or "none"),
    ]
    if s.unknown:
        names = ", ".join(name if name == sid else f"{name} (→ {sid})" for name, sid in s.unknown.items())
        lines.append(f"  unknown   {names}: not in the registry; map names to sensor ids with --sensor-map "
                     "FILE (CSV name,sensor_id)")
    lines.append(f"  elapsed   {report.elapsed_s:.1f} s, {rate:,.0f} readings/s")
    if not report.sent:
        lines.append("nothing replayed: no value in the file became a reading for the registry's sensors")
    return "\n".join(lines)
