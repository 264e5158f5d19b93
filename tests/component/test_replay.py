"""`drukte replay` against a real (embedded Tansu) broker: each format, pacing, exit codes and a year at speed."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

import schemas
from drukte.cli import main
from drukte.embedded import Service, start_broker
from drukte.kafka import bootstrap
from drukte.registry_check import load_registry
from drukte.replay import ReplayReport, run_replay
from drukte.settings import Settings
from streams.registry import Registry
from streams.timegrid import format_ts, parse_ts
from streams.topics import FOOTFALL

pytestmark = pytest.mark.component

REGISTRY = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: bruul-1, kind: street}, {id: bruul-2, kind: street}, {id: bruul-3, kind: entrance}]
  - id: lisboa
    name: Lisboa
    timezone: Europe/Lisbon
    country: PT
    zones:
      - id: lisboa-alfama
        name: Alfama
        sensors: [{id: alfama-1, kind: street}, {id: alfama-2, kind: street}, {id: alfama-3, kind: street}]
"""
# A frozen "now" for the future check: Saturday 28 November 2026, noon in Mechelen.
NOW_S = parse_ts("2026-11-28T12:00:00+01:00") / 1000
VALIDATOR = jsonschema.Draft202012Validator(schemas.load("footfall.counts.v1"))

Reading = tuple[str, str, int, int, int]  # sensor_id, start, seconds, in, out as on the wire

# Each case: file name, file text, sensor map (or None), readings expected on the topic, skips, blank values.
CASES: dict[str, tuple[str, str, str | None, list[Reading], dict[str, int], int]] = {
    # wide, as Belgian Excel writes it: `;`, day-first dates, `1.234` is a thousand, a blank, a totals column that
    # is no sensor, and a sensor of a city in another time zone whose wall clock is its own (Lisbon, +00:00)
    "wide": (
        "Tellingen Bruul 2026.csv",
        "\ufeffDatum;Bruul 1;Bruul 2;Bruul 3;Alfama 1;Totaal\n"
        "13/11/2026 14:00;12;;7;3;22\n"
        "13/11/2026 15:00;1.234;5;0;4;1243\n",
        None,
        [("bruul-1", "2026-11-13T14:00:00+01:00", 3600, 12, 0), ("bruul-3", "2026-11-13T14:00:00+01:00", 3600, 7, 0),
         ("alfama-1", "2026-11-13T14:00:00+00:00", 3600, 3, 0), ("bruul-1", "2026-11-13T15:00:00+01:00", 3600, 1234, 0),
         ("bruul-2", "2026-11-13T15:00:00+01:00", 3600, 5, 0), ("bruul-3", "2026-11-13T15:00:00+01:00", 3600, 0, 0),
         ("alfama-1", "2026-11-13T15:00:00+00:00", 3600, 4, 0)],
        {"unknown_sensor": 2},
        1,
    ),
    # long, with Dutch column names, a date and a time column, in/uit, names mapped by a sensor map, a blank
    # reading and a negative count
    "long": (
        "telpunten.csv",
        "telpunt,datum,tijd,in,uit\n"
        "Telpunt A,2026-11-13,14:00,3,4\nTelpunt B,2026-11-13,14:00,5,6\n"
        "Telpunt A,2026-11-13,15:00,,\nTelpunt B,2026-11-13,15:00,7,8\n"
        "Telpunt A,2026-11-13,16:00,1,1\nTelpunt B,2026-11-13,16:00,2,-1\n",
        "name,sensor_id\nTelpunt A,bruul-1\nTelpunt B,bruul-2\n",
        [("bruul-1", "2026-11-13T14:00:00+01:00", 3600, 3, 4), ("bruul-2", "2026-11-13T14:00:00+01:00", 3600, 5, 6),
         ("bruul-2", "2026-11-13T15:00:00+01:00", 3600, 7, 8), ("bruul-1", "2026-11-13T16:00:00+01:00", 3600, 1, 1)],
        {"negative_count": 1},
        1,
    ),
    # inout, quarter-hours, ISO 8601 with offsets (Z too); the total stands in for blank IN/OUT; a row after
    # "now" is skipped as future
    "inout": (
        "meir_inout.csv",
        "timestamp,Bruul 1,Bruul 1 IN,Bruul 1 OUT,Bruul 2,Bruul 2 IN,Bruul 2 OUT\n"
        "2026-11-13T14:00:00+01:00,10,4,6,3,1,2\n"
        "2026-11-13T14:15:00+01:00,11,,,5,2,3\n"
        "2026-11-13T14:30:00+01:00,,,,,,\n"
        "2026-11-13T14:45:00Z,2,1,1,,,\n"
        "2026-11-28T12:00:00+01:00,5,2,3,,,\n",
        None,
        [("bruul-1", "2026-11-13T14:00:00+01:00", 900, 4, 6), ("bruul-2", "2026-11-13T14:00:00+01:00", 900, 1, 2),
         ("bruul-1", "2026-11-13T14:15:00+01:00", 900, 11, 0), ("bruul-2", "2026-11-13T14:15:00+01:00", 900, 2, 3),
         ("bruul-1", "2026-11-13T15:45:00+01:00", 900, 1, 1)],
        {"future": 1},
        4,
    ),
}


@pytest.fixture
def broker() -> Iterator[Service]:
    """A fresh broker per test, so each test reads back exactly what it produced."""
    svc = start_broker()
    yield svc
    svc.stop()


def _settings(broker: Service, tmp_path: Path) -> Settings:
    return Settings(kafka_url=broker.url, partitions=3, data_dir=tmp_path)


def _registry(tmp_path: Path, text: str = REGISTRY) -> tuple[Path, Registry]:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path, load_registry(path)


async def _consume(url: str, readings: int, timeout_s: float = 60.0) -> list[tuple[bytes, dict[str, Any], int]]:
    """Key, value and timestamp of footfall.counts.v1 messages from the earliest offset until `readings` readings
    arrived (Tansu's "latest" offset is wrong, so count instead of reading to the end)."""
    consumer = AIOKafkaConsumer(FOOTFALL.name, bootstrap_servers=bootstrap(url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, dict[str, Any], int]] = []
    seen = 0
    try:
        deadline = time.monotonic() + timeout_s
        while seen < readings and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    value = orjson.loads(r.value)
                    out.append((r.key, value, r.timestamp))
                    seen += len(value["readings"])
    finally:
        await consumer.stop()
    return out


def _readings(batches: list[dict[str, Any]]) -> list[Reading]:
    return [(r["sensor_id"], r["start"], r["seconds"], r["in"], r["out"]) for b in batches for r in b["readings"]]


def _end_ms(reading: dict[str, Any]) -> int:
    return parse_ts(reading["start"]) + int(reading["seconds"]) * 1000


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_each_format_lands_on_the_topic_as_exact_contract_batches(broker: Service, tmp_path: Path, fmt: str) -> None:
    name, text, mapping, expected, skipped, missing = CASES[fmt]
    _, registry = _registry(tmp_path)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    map_path = None
    if mapping is not None:
        map_path = tmp_path / "map.csv"
        map_path.write_text(mapping)

    report = asyncio.run(run_replay(_settings(broker, tmp_path), registry, path, sensor_map=map_path,
                                    clock=lambda: NOW_S))
    assert report.summary.format == fmt
    assert (report.sent, report.batches) == (len(expected), 1)
    assert report.summary.skipped == skipped
    assert report.summary.missing == missing

    got = asyncio.run(_consume(broker.url, len(expected)))
    source = {"wide": "replay-tellingen-bruul-2026", "long": "replay-telpunten", "inout": "replay-meir-inout"}[fmt]
    assert [key for key, _, _ in got] == [source.encode()]
    batches = [value for _, value, _ in got]
    for batch in batches:
        VALIDATOR.validate(batch)
    assert batches[0]["source"] == source
    assert batches[0]["batch_id"] == f"{source}/1"
    assert sorted(_readings(batches)) == sorted(expected)
    # in time order; sent when its last reading ended
    ends = [_end_ms(r) for r in batches[0]["readings"]]
    assert [parse_ts(r["start"]) for r in batches[0]["readings"]] == sorted(parse_ts(r[1]) for r in expected)
    assert parse_ts(batches[0]["sent_at"]) == max(ends)
    assert batches[0]["sent_at"].endswith("Z")


def test_city_narrows_the_replay_and_speed_paces_it(broker: Service, tmp_path: Path) -> None:
    _, registry = _registry(tmp_path)
    path = tmp_path / "both.csv"
    hours = [f"2026-11-13 {h:02d}:00" for h in range(10, 15)]
    path.write_text("t,Bruul 1,Bruul 2,Alfama 1\n" + "".join(f"{h},1,2,3\n" for h in hours))
    # two simulated hours per real second: five hourly steps, each sent as its hour ends, over about 2 s
    report = asyncio.run(run_replay(_settings(broker, tmp_path), registry, path, city="mechelen", speed=7200.0,
                                    clock=lambda: NOW_S))
    assert (report.sent, report.batches) == (10, 5)
    assert report.summary.skipped == {"other_city": 5}
    assert report.summary.unknown == {}
    got = asyncio.run(_consume(broker.url, 10))
    assert [len(v["readings"]) for _, v, _ in got] == [2] * 5  # one batch per start, as a gateway sends them
    assert {r[0] for r in _readings([v for _, v, _ in got])} == {"bruul-1", "bruul-2"}
    stamps = [ts for _, _, ts in got]
    assert 1.5 <= (stamps[-1] - stamps[0]) / 1000 <= 3.0


def test_cli_replays_and_exits_by_outcome(broker: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    reg_path, _ = _registry(tmp_path)
    monkeypatch.setenv("DRUKTE_KAFKA_URL", broker.url)
    good = tmp_path / "good.csv"
    good.write_text("timestamp,Bruul 1,Onbekend\n2026-11-13 14:00,5,1\n2026-11-13 15:00,6,2\n")
    assert main(["replay", str(good), "--registry", str(reg_path)]) == 0
    out = capsys.readouterr().out
    assert "readings  2 sent in 1 batches to footfall.counts.v1 as replay-good (mechelen)" in out
    assert "skipped   2 unknown_sensor" in out
    assert "unknown   Onbekend (→ onbekend): not in the registry; map names to sensor ids with --sensor-map" in out
    assert "readings/s" in out

    # nothing replayable: the summary, then exit 1
    none = tmp_path / "none.csv"
    none.write_text("timestamp,Onbekend\n2026-11-13 14:00,5\n2026-11-13 15:00,6\n")
    assert main(["replay", str(none), "--registry", str(reg_path)]) == 1
    assert "nothing replayed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "cannot read the replay file .*missing.csv: No such file or directory; give the path"),
        (["odd.csv"], r"cannot tell the file's format.*pass --format wide\|long\|inout"),
        (["good.csv", "--speed", "fast"], "--speed must be `max` or a number above 0"),
        (["good.csv", "--city", "gent"], "unknown city 'gent': the registry has mechelen, lisboa"),
        (["good.csv", "--sensor-map", "map.csv"], r"map.csv: sensor map line 2: 'Bruul 1' is not a registry"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], args: list[str],
                                                 message: str) -> None:
    reg_path, _ = _registry(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd.csv").write_text("foo,bar\nx,y\n")
    (tmp_path / "good.csv").write_text("timestamp,Bruul 1\n2026-11-13 14:00,5\n2026-11-13 15:00,6\n")
    (tmp_path / "map.csv").write_text("name,sensor_id\nA,Bruul 1\n")
    assert main(["replay", *args, "--registry", str(reg_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drukte: ")
    assert re.search(message, err), err


def test_unknown_format_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "x.csv", "--format", "excel"])
    assert exc.value.code == 2
    assert "invalid choice: 'excel' (choose from 'auto', 'wide', 'long', 'inout')" in capsys.readouterr().err


def _year_registry(n: int) -> str:
    zones = "\n".join(
        f"      - id: zone-{z}\n        name: Zone {z}\n        sensors: ["
        + ", ".join(f"{{id: sensor-{z * 4 + k:02d}, kind: street}}" for k in range(4)) + "]"
        for z in range(n // 4))
    return ("cities:\n  - id: testtown\n    name: Testtown\n    timezone: Europe/Brussels\n    country: BE\n"
            f"    zones:\n{zones}\n")


def test_a_year_of_hourly_data_for_40_sensors_replays_in_under_a_minute(broker: Service, tmp_path: Path) -> None:
    sensors, hours = 40, 8760
    _, registry = _registry(tmp_path, _year_registry(sensors))
    # Wall-clock timestamps as a city's counter exports them: the autumn hour twice, the spring hour never.
    first_ms = parse_ts("2025-11-27T00:00:00+01:00")
    rng = random.Random(2026)
    lines = ["Tijdstip," + ",".join(f"Sensor {i:02d}" for i in range(sensors))]
    for h in range(hours):
        stamp = format_ts(first_ms + h * 3_600_000, "Europe/Brussels")[:16].replace("T", " ")
        lines.append(stamp + "," + ",".join(str(rng.randint(0, 2000)) for _ in range(sensors)))
    path = tmp_path / "year.csv"
    path.write_text("\n".join(lines) + "\n")

    t0 = time.perf_counter()
    report: ReplayReport = asyncio.run(run_replay(_settings(broker, tmp_path), registry, path,
                                                  clock=lambda: NOW_S))
    elapsed = time.perf_counter() - t0
    print(f"\nreplayed {report.sent} readings in {report.batches} batches in {elapsed:.1f} s "
          f"({report.sent / elapsed:,.0f} readings/s)")
    assert elapsed < 60
    assert report.sent == sensors * hours
    assert report.batches == math.ceil(sensors * hours / 500)
    assert report.summary.skipped == {}
    assert report.summary.interval_s == 3600

    got = asyncio.run(_consume(broker.url, report.sent, timeout_s=120))
    batches = [v for _, v, _ in got]
    assert sum(len(b["readings"]) for b in batches) == sensors * hours
    for batch in (batches[0], batches[-1]):
        VALIDATOR.validate(batch)
    ids = [int(b["batch_id"].rsplit("/", 1)[1]) for b in batches]
    assert ids == list(range(1, len(batches) + 1))
    starts = Counter(r["start"][:19] for b in batches for r in b["readings"])
    assert starts["2026-10-25T02:00:00"] == 2 * sensors  # the autumn hour, twice
    assert starts["2026-03-29T02:00:00"] == 0  # the spring hour, never
