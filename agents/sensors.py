"""Sensor health at the edge: flagged readings leave the zone sums at ingest; every few seconds the states go
to Prometheus (`drukte_sensor_health{state}`) and the store (`drukte:sensors:{zone}`) for the API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import faust

from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.footfall import Reading
from streams.opening import is_open
from streams.registry import Registry
from streams.sensorhealth import STATES, HealthPolicy, SensorHealth
from streams.timegrid import format_ts

REPORT_S = 10.0


class SensorStore(Protocol):
    async def publish_sensors(self, views: list[dict[str, Any]]) -> None: ...


class SensorWatch:
    def __init__(self, app: faust.App, settings: Settings, registry: Registry, store: SensorStore,
                 metrics: WorkerMetrics, clock: Callable[[], int]) -> None:
        self.registry, self.store, self.metrics, self.clock = registry, store, metrics, clock

        def zone_open(zone_id: str, at_ms: int) -> bool:
            city = registry.city_of_zone[zone_id]
            return is_open(registry.zones[zone_id].opening, at_ms, city.timezone, city.country)

        self.health = SensorHealth(registry, HealthPolicy(silent_ms=3 * settings.window_s * 1000), zone_open)
        app.timer(REPORT_S, name="drukte.sensors.report")(self.report)

    def filter(self, readings: list[Reading]) -> list[Reading]:
        """The readings to count, in their order: those of stuck or jumping sensors left out (and counted)."""
        keep, excluded = self.health.observe(readings)
        for state, n in excluded.items():
            self.metrics.readings_excluded.labels(state).inc(n)
        return keep

    async def report(self) -> None:
        now = self.clock()
        states = self.health.states(now)
        counts = Counter(state for state, _ in states.values())
        for state in STATES:
            self.metrics.sensor_health.labels(state).set(counts.get(state, 0))
        views = []
        for zone in self.registry.zones.values():
            seen = [s for s in zone.sensors if s.id in states]
            if not seen:
                continue  # another worker reads this zone's gateway
            tz = self.registry.city_of_zone[zone.id].timezone
            views.append({"zone_id": zone.id, "as_of": format_ts(now, tz), "sensors": [
                {"id": s.id, "kind": s.kind, "state": states[s.id][0],
                 "since": format_ts(states[s.id][1], tz) if states[s.id][1] else None} for s in seen]})
        if views:
            await self.store.publish_sensors(views)
