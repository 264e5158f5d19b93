"""bench.dedupe: the window state stays the size of its sensors, not of its readings."""

from __future__ import annotations

from bench import dedupe


def test_a_window_of_one_second_readings_stays_small() -> None:
    per_minute, state_bytes = dedupe.run(sensors=20)
    assert len(per_minute) == 5
    # 20 sensors × 300 readings: a tag per reading made 120 kB; one run per sensor is about 40 bytes
    assert state_bytes < 20 * 100
