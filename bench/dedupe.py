"""`python -m bench.dedupe`: the pure window engine's cost per reading as a window fills with one-second readings.

One zone of `--sensors` street counters, each sending a one-second reading every second for one window
(300 s), one message per second; prints the mean µs per reading after each minute (flat is right: a cost that
grows with the window is a scan of everything it holds) and the size of the window's state as JSON (what the
worker writes to the changelog for that window at every batch). No broker, no store: `streams` only.
"""

from __future__ import annotations

import argparse
import time

import orjson

from streams.footfall import Reading
from streams.windows import WindowConfig, WindowEngine

WINDOW_MS = 300_000
T0 = 1_795_785_000_000  # a window start


def run(sensors: int) -> tuple[list[float], int]:
    engine = WindowEngine(WindowConfig(window_ms=WINDOW_MS, grace_ms=5_000, idle_ms=30_000, live_ms=3_600_000,
                                       retention_ms=48 * 3_600_000),
                          lambda zone, start: (str(start // 86_400_000), (start % 86_400_000) // WINDOW_MS))
    state: dict[str, object] = {}
    per_minute: list[float] = []
    spent, n = 0.0, 0
    for sec in range(WINDOW_MS // 1000):
        readings = [Reading(f"s-{i}", "z", T0 + sec * 1000, 1000, 1) for i in range(sensors)]
        t = time.perf_counter()
        engine.ingest(state, 0, "gw|z", T0 + (sec + 1) * 1000, readings)
        spent += time.perf_counter() - t
        n += sensors
        if sec % 60 == 59:
            per_minute.append(spent / n * 1e6)
    return per_minute, len(orjson.dumps(state[f"w|z|{T0}"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dedupe", description=__doc__)
    p.add_argument("--sensors", type=int, default=125, help="counters in the zone (5,000 sensors / 40 zones)")
    args = p.parse_args(argv)
    per_minute, state_bytes = run(args.sensors)
    print("mean µs per reading after minute 1..5:", " ".join(f"{x:.1f}" for x in per_minute))
    print(f"window state at the end: {state_bytes:,} bytes of JSON")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
