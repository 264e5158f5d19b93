"""Hand-made bad (and odd but valid) footfall.counts.v1 messages with the outcome each must have.

Shared by the parser's property test (tests/unit/test_fuzz_footfall.py) and the worker's e2e test
(tests/e2e/test_faults_input.py, which loads this file by its path: tests/unit is no package). Sensors are
those of tests/e2e/registry.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

MIN = 60_000
SOURCE = "gw-testtown-01"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Case:
    name: str
    raw: bytes
    reasons: list[str]  # rejection reasons, sorted
    valid: list[dict[str, Any]] = field(default_factory=list)  # readings that must be counted


def batch(readings: list[Any], **extra: Any) -> dict[str, Any]:
    return {"source": SOURCE, "batch_id": f"{SOURCE}/fuzz", "sent_at": "2026-11-27T14:15:03Z",
            "readings": readings, **extra}


def reading(sensor: str, start_ms: int, n_in: int = 10, n_out: int = 0, seconds: int = 60) -> dict[str, Any]:
    return {"sensor_id": sensor, "start": iso(start_ms), "seconds": seconds, "in": n_in, "out": n_out}


def corpus(now_ms: int, at_ms: int) -> list[Case]:
    """The cases for a worker whose clock reads `now_ms`; valid readings start at `at_ms` + 30 s (tt-main-01,
    tt-main-02: 10 people each), so they never share a start with minute-aligned readings."""
    good = [reading("tt-main-01", at_ms + 30_000), reading("tt-main-02", at_ms + 30_000, 5, 5)]
    valid_bytes = orjson.dumps(batch([reading("tt-main-01", at_ms)]))
    return [
        Case("not_json", b"hello, kafka", ["malformed_json"]),
        Case("empty_message", b"", ["malformed_json"]),
        Case("truncated_utf8", "{\"source\": \"gw-é".encode()[:-1], ["malformed_json"]),
        Case("invalid_utf8", valid_bytes.replace(b"tt-main-01", b"tt-m\xffin-01"), ["malformed_json"]),
        Case("truncated_json", valid_bytes[:-7], ["malformed_json"]),
        Case("nan", valid_bytes.replace(b'"in":10', b'"in":NaN'), ["malformed_json"]),
        Case("infinity", valid_bytes.replace(b'"in":10', b'"in":Infinity'), ["malformed_json"]),
        Case("overflowing_float", valid_bytes.replace(b'"in":10', b'"in":1e400'), ["malformed_json"]),
        Case("huge_integer", valid_bytes.replace(b'"in":10', b'"in":123456789012345678901234567890'),
             ["schema_violation"]),
        Case("json_array", b"[]", ["schema_violation"]),
        Case("json_null", b"null", ["schema_violation"]),
        Case("json_number", b"42", ["schema_violation"]),
        Case("wrong_type_count", orjson.dumps(batch([{**good[0], "in": "10"}])), ["schema_violation"]),
        Case("wrong_type_readings", orjson.dumps(batch({"sensor_id": "tt-main-01"})), ["schema_violation"]),
        Case("float_seconds", orjson.dumps(batch([{**good[0], "seconds": 60.5}])), ["schema_violation"]),
        Case("bool_count", orjson.dumps(batch([{**good[0], "in": True}])), ["schema_violation"]),
        Case("negative_count", orjson.dumps(batch([{**good[0], "out": -5}])), ["schema_violation"]),
        Case("zero_seconds", orjson.dumps(batch([{**good[0], "seconds": 0}])), ["schema_violation"]),
        Case("wrong_key_batch", orjson.dumps({**batch([]), "src": "x"}), ["schema_violation"]),
        Case("wrong_key_reading", orjson.dumps(batch([{**good[0], "count": 3}])), ["schema_violation"]),
        Case("missing_key", orjson.dumps({k: v for k, v in batch([]).items() if k != "batch_id"}),
             ["schema_violation"]),
        Case("no_offset", orjson.dumps(batch([{**good[0], "start": "2026-11-27T14:14:00"}])), ["schema_violation"]),
        Case("deep_nesting", b'{"readings": [' * 250 + b"1" + b"]}" * 250, ["schema_violation"]),  # 500 levels
        Case("too_deep_for_json", b"[" * 100_000 + b"]" * 100_000, ["malformed_json"]),
        Case("many_keys", orjson.dumps({**batch([]), **{f"k{i}": i for i in range(120_000)}}), ["schema_violation"]),
        Case("five_megabytes", orjson.dumps(batch([], batch_id="x" * 5_000_000)), ["too_large"]),
        Case("empty_batch", orjson.dumps(batch([])), []),
        # per reading: only the bad ones are rejected, the good ones in the same batch count
        Case("mixed_batch", orjson.dumps(batch([
            good[0],
            reading("tt-nowhere-01", at_ms),  # unknown sensor
            reading("tt-main-03", at_ms + 30_000, 10 ** 6),  # absurd count
            {**reading("tt-main-03", at_ms), "start": "2026-02-30T00:00:00Z"},  # no such day
            {**reading("tt-main-03", at_ms), "start": "2026-11-27T24:00:00+01:00"},  # no such hour
            reading("tt-main-03", now_ms + 86_400_000),  # tomorrow
            {**reading("tt-main-03", at_ms), "start": "9999-12-31T23:59:59-23:59"},  # far future
            {**reading("tt-main-03", at_ms), "start": "0001-01-01T00:00:00+14:00"},  # far past
            {**reading("tt-main-03", at_ms), "start": "1970-01-01T00:00:00Z"},  # far past
            good[1],
        ])), sorted(["unknown_sensor", "absurd_count", "bad_timestamp", "bad_timestamp", "future_timestamp",
                     "future_timestamp", "bad_timestamp", "bad_timestamp"]), good),
    ]


def many_readings(start_ms: int, n: int = 10_000) -> tuple[bytes, list[dict[str, Any]]]:
    """One batch of `n` one-second readings of tt-main (10 people in every hundredth), all valid."""
    readings = [reading(f"tt-main-0{i % 3 + 1}", start_ms + (i // 3) * 1000, 10 if i % 100 == 0 else 0,
                        seconds=1) for i in range(n)]
    return orjson.dumps(batch(readings)), readings
