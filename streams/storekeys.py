"""The Redis key layout shared by the worker (writes) and the API (reads); values are orjson, written whole."""

from __future__ import annotations

LIVE_PREFIX = "drukte:live:"  # STRING per zone: the live object with internal `as_of_ms`
WINDOWS_PREFIX = "drukte:windows:"  # ZSET per zone: score = window start ms, member = that window's object
PROFILE_PREFIX = "drukte:profile:"  # STRING per zone: today's usual curve on the score scale (streams.today)
SPENDING_PREFIX = "drukte:spending:"  # STRING per zone: the newest published spending object (indices only)
DEVICES_PREFIX = "drukte:devices:"  # STRING per zone: its newest published distinct-device window (a range)
SENSORS_PREFIX = "drukte:sensors:"  # STRING per zone: its sensors' health states (no counts)
HEARTBEAT_KEY = "drukte:worker:heartbeat"  # STRING: epoch ms of the worker's last tick
UPDATES_CHANNEL = "drukte:updates"  # PUB/SUB: {"kind", "zone_id", "city_id"} per key written (ids only)


def live_key(zone_id: str) -> str:
    return LIVE_PREFIX + zone_id


def windows_key(zone_id: str) -> str:
    return WINDOWS_PREFIX + zone_id


def profile_key(zone_id: str) -> str:
    return PROFILE_PREFIX + zone_id


def spending_key(zone_id: str) -> str:
    return SPENDING_PREFIX + zone_id


def sensors_key(zone_id: str) -> str:
    return SENSORS_PREFIX + zone_id


def devices_key(zone_id: str) -> str:
    return DEVICES_PREFIX + zone_id
