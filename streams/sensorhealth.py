"""Sensor health: silent, stuck at zero, or far above its usual share; flagged sensors leave the zone sum.

Judged at ingest from the readings themselves, per sensor, against the other sensors of the same kind in its
zone (its "neighbours"), which follow the same daily curve:

- `silent`: no reading for `silent_ms` (three windows) while the zone is open. Only sensors this process has
  seen count: with several workers, each judges the gateways it reads.
- `stuck`: `stuck_run` readings in a row of zero while the neighbours' median is at least `busy_rate` per
  minute: a counter that stopped counting, not a quiet street.
- `jump`: a rate above `jump_factor` × its usual share of the neighbours' median (a running mean of its own
  ratio while healthy, starting at 1), and above `busy_rate`: a counter gone wild.

A reading of a stuck or jumping sensor is dropped from the sum (`excluded`), so the zone's figures rest on the
healthy sensors and `quality.sensors_reporting` / `coverage` tell the reader. A sensor recovers as soon as it
reads normally again.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.footfall import Reading
from streams.registry import Registry

OK, SILENT, STUCK, JUMP = "ok", "silent", "stuck", "jump"
STATES = (OK, SILENT, STUCK, JUMP)
MINUTE_MS = 60_000


def _median_without(rates: list[float], own: float) -> float | None:
    """The median of sorted `rates` with one `own` left out (the neighbours of the sensor that read `own`);
    None when fewer than two remain."""
    i = bisect_left(rates, own)
    rest = rates[:i] + rates[i + 1:]
    n = len(rest)
    if n < 2:
        return None
    mid = n // 2
    return rest[mid] if n % 2 else (rest[mid - 1] + rest[mid]) / 2


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    silent_ms: int  # three publication windows
    stuck_run: int = 15  # zero readings in a row while the neighbours count
    jump_factor: float = 5.0
    busy_rate: float = 2.0  # passages per minute: below this, zeros and jumps are just a quiet street
    learn: float = 0.02  # weight of a new healthy ratio in the running usual share


@dataclass(slots=True)
class _Sensor:
    last_ms: int = 0  # end of the newest reading
    zeros: int = 0
    share: float = 1.0  # usual rate relative to the neighbours' median
    state: str = OK
    since_ms: int = 0


@dataclass(slots=True)
class SensorHealth:
    registry: Registry
    policy: HealthPolicy
    is_open: Callable[[str, int], bool]  # (zone id, epoch ms) → open by its opening hours
    sensors: dict[str, _Sensor] = field(default_factory=dict)

    def observe(self, readings: list[Reading]) -> tuple[list[Reading], dict[str, int]]:
        """Update each sensor's health from one batch (its neighbours: the readings of the same zone, kind and
        interval in it); return the readings to count, in their order, and how many were excluded, by state."""
        peers: dict[tuple[str, str, int, int], list[int]] = defaultdict(list)
        sensors = self.registry.sensors
        for i, r in enumerate(readings):
            peers[(r.zone_id, sensors[r.sensor_id].kind, r.start_ms, r.dur_ms)].append(i)
        dropped: set[int] = set()
        excluded: dict[str, int] = defaultdict(int)
        for group in peers.values():
            minutes = readings[group[0]].dur_ms / MINUTE_MS
            rates = sorted(readings[i].visitors / minutes for i in group)  # once per group, not once per member
            for i in group:
                r = readings[i]
                state = self._judge(r, _median_without(rates, r.visitors / minutes))
                if state in (STUCK, JUMP):
                    excluded[state] += 1
                    dropped.add(i)
        keep = [r for i, r in enumerate(readings) if i not in dropped] if dropped else readings
        return keep, dict(excluded)

    def _judge(self, r: Reading, ref: float | None) -> str:
        """`ref`: the median rate of its neighbours in the same interval (None with fewer than two)."""
        s = self.sensors.setdefault(r.sensor_id, _Sensor())
        s.last_ms = max(s.last_ms, r.end_ms)
        rate = r.visitors / (r.dur_ms / MINUTE_MS)
        state = OK
        if ref is not None and ref >= self.policy.busy_rate:
            s.zeros = s.zeros + 1 if r.visitors == 0 else 0
            ratio = rate / ref
            if s.zeros >= self.policy.stuck_run:
                state = STUCK
            elif ratio > self.policy.jump_factor * s.share and rate >= self.policy.busy_rate:
                state = JUMP
            elif r.visitors > 0:
                s.share += self.policy.learn * (ratio - s.share)
        elif r.visitors > 0:
            s.zeros = 0
        self._set(s, state, r.end_ms)
        return state

    def _set(self, s: _Sensor, state: str, at_ms: int) -> None:
        if state != s.state:
            s.state, s.since_ms = state, at_ms

    def states(self, now_ms: int) -> dict[str, tuple[str, int]]:
        """Every seen sensor's state and since when, with `silent` for those quiet too long while open."""
        out = {}
        for sensor_id, s in self.sensors.items():
            zone = self.registry.sensors[sensor_id].zone_id
            if now_ms - s.last_ms > self.policy.silent_ms and self.is_open(zone, now_ms):
                out[sensor_id] = (SILENT, s.last_ms)
            else:
                out[sensor_id] = (s.state, s.since_ms)
        return out
