"""`python -m bench.floor`: the worker's pure per-reading logic, without Kafka, Faust or Redis, against the ceiling's.

Issue 7 asks the worker for 0.4× (B) and 0.3× (A) of the plain-consumer ceiling. This measures the least the
worker's own logic costs per reading on the throughput benchmark's data (`bench.throughput.make_dataset`),
stage by stage and in one process, so nothing here waits on a broker or shares a core with one:

- parse: decode and validate a footfall message (JSON Schema, registry, policy: the contract's checks)
- health: sensor health per zone group of an ingest batch (`SensorHealth.observe`)
- regroup: group a batch's readings per (zone, source, input partition) and encode the zone-topic messages
- decode: the windows side decodes each zone-topic message back into readings
- windows: dedupe, apportion, watermarks, closing and finalizing windows (`WindowEngine`)

The garbage collector is set as in the worker (`drukte.heap.tune_gc`). Left out, so the sum is a floor: Kafka
fetch and produce, Faust's delivery and changelog, window objects, usual bands, forecasts, publishing and Redis.
Next to it, the ceiling's own work per reading (`bench.baseline.add`: decode and sum per zone and window) on
the same messages.

The worker's Python runs on one thread, so its wall time per reading is at least this floor, and its rate
at most 1e6 / floor readings/s. Given the ceiling's rate measured on the broker (`--ceiling-rps`, default:
the newest `bench/results/throughput-*.json` of that encoding), the floor bounds the ratio the issue asks for:
ratio ≤ (1e6 / ceiling_rps) / floor_us. Results go to bench/results/floor-<UTC>.json.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import schemas
from agents.footfall import decode_readings, encode_readings
from bench.baseline import add
from bench.throughput import ENCODINGS, IDLE_S, WINDOW_MS, BenchConfig, make_dataset
from drukte.heap import tune_gc
from drukte.settings import Settings
from streams.footfall import FootfallParser, IngestPolicy, Reading
from streams.registry import Registry, parse_registry
from streams.sensorhealth import HealthPolicy, SensorHealth
from streams.usual import UsualModel
from streams.windows import WindowConfig, WindowEngine

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"A": 0.3, "B": 0.4}  # issue 7
BATCH_EVENTS: int = Settings.model_fields["batch_events"].default  # input messages per ingest batch
PARTITIONS = 8
IDLE_MS = IDLE_S * 1000
STAGES = ("parse", "health", "regroup", "decode", "windows")

Group = tuple[str, str, int]  # (zone, source, input partition)


class Clocked:
    """Seconds spent per stage: `with clock("parse"): ...`."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.spent[stage] += time.perf_counter() - t


def zone_partition(zone: str) -> int:
    return zlib.crc32(zone.encode()) % PARTITIONS


def pipeline(messages: list[tuple[int, bytes, bytes]], registry: Registry,
             now_ms: int) -> tuple[Clocked, dict[tuple[str, int], int]]:
    """The worker's logic over every message, batch by batch; returns the time per stage and the visitors of
    every window closed, by (zone, start)."""
    clock = Clocked()
    parser = FootfallParser(schemas.load("footfall.counts.v1"), registry,
                            IngestPolicy(max_future_ms=300_000, max_rate_per_s=50))
    health = SensorHealth(registry, HealthPolicy(silent_ms=3 * WINDOW_MS), lambda zone, at: True)
    state: dict[str, Any] = {}
    usual = UsualModel(registry, lambda zone, day: engine.history(state, zone, day), window_ms=WINDOW_MS,
                       weeks=8, min_sensors=3, k_min=15)
    engine = WindowEngine(WindowConfig(window_ms=WINDOW_MS, grace_ms=120_000, idle_ms=IDLE_MS, live_ms=900_000,
                                       retention_ms=48 * 3_600_000), usual.calendar)
    closed: dict[tuple[str, int], int] = {}

    def close(part: int, now: int) -> None:
        due = engine.due(state, part, now)
        engine.finalize(state, part, due)
        closed.update(((c.zone_id, c.start_ms), c.visitors) for c in due)

    for i in range(0, len(messages), BATCH_EVENTS):
        with clock("parse"):
            parsed = [(p, parser.parse(v, now_ms)) for p, _, v in messages[i:i + BATCH_EVENTS]]
        with clock("regroup"):
            groups: dict[Group, list[Reading]] = defaultdict(list)
            for p, q in parsed:
                for r in q.readings:
                    groups[(r.zone_id, q.source or "?", p)].append(r)
        with clock("health"):
            kept = {k: health.observe(rs)[0] for k, rs in groups.items()}
        with clock("regroup"):
            wire = [(k, encode_readings(k[1], rs, k[2])) for k, rs in kept.items()]
        with clock("decode"):
            docs = [(k, decode_readings(k[0], orjson.loads(v))) for k, v in wire]
        with clock("windows"):
            for (zone, source, p), readings in docs:
                engine.ingest(state, zone_partition(zone), f"{source}|{zone}", now_ms, readings, p)
                close(zone_partition(zone), now_ms)
    with clock("windows"):  # the input has ended: the worker's clock tick closes each zone's last window
        for part in range(PARTITIONS):
            engine.tick(state, part, now_ms + IDLE_MS, None)
            close(part, now_ms + IDLE_MS)
    return clock, closed


def ceiling(messages: list[tuple[int, bytes, bytes]], sensors: dict[str, tuple[str, bool]]) -> float:
    sums: dict[tuple[str, int], int] = {}
    t = time.perf_counter()
    for _, _, value in messages:
        add(sums, value, sensors, WINDOW_MS)
    return time.perf_counter() - t


def newest_ceiling(per_message: int) -> tuple[float, str] | None:
    """The ceiling's median rate in the newest throughput results with this encoding, and the file's name."""
    for path in sorted(RESULTS.glob("throughput-*.json"), reverse=True):
        for enc in orjson.loads(path.read_bytes()).get("encodings", []):
            rate = enc.get("summary", {}).get("baseline", {}).get("rate")
            if enc["config"]["per_message"] == per_message and rate:
                return float(rate), path.name
    return None


def measure(encoding: str, readings: int, repeats: int, ceiling_rps: float | None) -> dict[str, Any]:
    cfg = BenchConfig(readings=readings, per_message=ENCODINGS[encoding])
    now_ms = int(time.time() * 1000)
    ds = make_dataset(cfg, now_ms)
    registry = parse_registry(ds.registry_yaml)
    best: dict[str, float] = {}
    closed: dict[tuple[str, int], int] = {}
    for _ in range(repeats):  # the least of each stage: the machine is shared, noise only adds
        clock, closed = pipeline(ds.messages, registry, now_ms)
        for stage in STAGES:
            best[stage] = min(best.get(stage, float("inf")), clock.spent[stage])
        best["ceiling"] = min(best.get("ceiling", float("inf")), ceiling(ds.messages, ds.sensors))
    if closed != ds.truth:  # a harness that skipped work would measure less than the worker does
        wrong = sum(closed.get(k) != v for k, v in ds.truth.items())
        raise SystemExit(f"floor {encoding}: {len(closed)} windows closed, {wrong} of the {len(ds.truth)} expected "
                         "missing or not exact")
    us = {k: v / ds.readings * 1e6 for k, v in best.items()}
    floor_us = sum(us[s] for s in STAGES)
    source = "--ceiling-rps"
    if ceiling_rps is None:
        found = newest_ceiling(cfg.per_message)
        ceiling_rps, source = found if found else (None, "none found")
    res: dict[str, Any] = {
        "encoding": encoding, "per_message": cfg.per_message, "readings": ds.readings,
        "messages": len(ds.messages), "windows": len(closed), "repeats": repeats,
        "us_per_reading": {k: round(v, 3) for k, v in us.items()}, "floor_us": round(floor_us, 3),
        "floor_vs_ceiling_work": round(floor_us / us["ceiling"], 1),
        "max_rate": round(1e6 / floor_us), "target": TARGETS[encoding],
        "ceiling_rps": ceiling_rps, "ceiling_from": source,
    }
    if ceiling_rps:
        res["budget_us"] = round(1e6 / (TARGETS[encoding] * ceiling_rps), 3)
        res["max_ratio"] = round(1e6 / ceiling_rps / floor_us, 3)
    return res


def report(res: dict[str, Any]) -> str:
    us = res["us_per_reading"]
    lines = [f"encoding {res['encoding']} ({res['per_message']} per message), {res['readings']:,} readings, "
             f"{res['windows']:,} windows, least of {res['repeats']}: µs of CPU per reading"]
    lines += [f"  {stage:<8} {us[stage]:7.2f}" for stage in STAGES]
    lines.append(f"  {'floor':<8} {res['floor_us']:7.2f}   (at most {res['max_rate']:,} readings/s on one thread; "
                 f"{res['floor_vs_ceiling_work']}x the ceiling's own work, {us['ceiling']:.2f})")
    if "max_ratio" in res:
        lines.append(f"  ceiling {res['ceiling_rps']:,.0f} readings/s ({res['ceiling_from']}): target "
                     f"x{res['target']} leaves {res['budget_us']:.2f} µs per reading; the floor alone allows "
                     f"at most x{res['max_ratio']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readings", type=int, default=200_000)
    p.add_argument("--encodings", default="A,B", help="A (1 reading per message), B (100), or A,B")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ceiling-rps", type=float, default=None,
                   help="the ceiling's rate to compare with (default: the newest throughput results)")
    args = p.parse_args(argv)
    encodings = [e.strip().upper() for e in args.encodings.split(",") if e.strip()]
    unknown = [e for e in encodings if e not in ENCODINGS]
    if unknown:
        p.error(f"unknown encoding {', '.join(unknown)}: use A, B or A,B")
    tune_gc()  # the collector as the worker runs it (a third of this floor with CPython's defaults)
    results = [measure(e, args.readings, args.repeats, args.ceiling_rps) for e in encodings]
    for res in results:
        print(report(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"floor-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps({"at": datetime.now(UTC).isoformat(), "results": results},
                                  option=orjson.OPT_INDENT_2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
