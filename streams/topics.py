"""Topic names and their creation settings: the wire contract of CONTRACT.md §3 as data."""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    retention_ms: int | None  # None: the broker's default
    segment_ms: int | None = None

    def configs(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
            # P4: a segment is only deleted when closed, so it must roll at least as often as retention.
            out["segment.ms"] = str(self.segment_ms or self.retention_ms)
        return out


FOOTFALL = TopicSpec("footfall.counts.v1", 7 * DAY_MS, DAY_MS)
PAYMENTS = TopicSpec("payments.v1", DAY_MS, HOUR_MS)
DEVICES = TopicSpec("devices.detections.v1", HOUR_MS, 10 * 60_000)
REJECTED = TopicSpec("ingest.rejected.v1", 7 * DAY_MS, DAY_MS)
BUSYNESS = TopicSpec("busyness.zone.v1", None)
SPENDING = TopicSpec("spending.zone.v1", None)

# Distinct-device counts per zone window (integers as rounded ranges, never an address or pseudonym).
DEVICES_ZONE = TopicSpec("devices.zone.v1", None)

INPUT_TOPICS = (FOOTFALL, PAYMENTS, DEVICES)
OUTPUT_TOPICS = (REJECTED, BUSYNESS, SPENDING, DEVICES_ZONE)
