"""Window grid, apportioning and time parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.timegrid import apportion, format_ts, parse_ts, window_start

MIN = 60_000


@pytest.mark.parametrize(
    ("ts", "window", "expected"),
    [
        (0, 300_000, 0),  # the epoch is a window start
        (299_999, 300_000, 0),  # last ms of the first window: half-open end
        (300_000, 300_000, 300_000),  # the end belongs to the next window
        (-1, 300_000, -300_000),  # before 1970 floors down, not towards zero
        (1_795_785_240_000, 3_600_000, 1_795_784_400_000),  # 14:14 local → 14:00 local (whole-hour offset)
    ],
)
def test_window_start(ts: int, window: int, expected: int) -> None:
    assert window_start(ts, window) == expected


@pytest.mark.parametrize(
    ("start", "dur", "count", "window", "expected"),
    [
        (0, MIN, 12, 5 * MIN, [(0, 12, MIN)]),  # inside one window: all of it
        (4 * MIN, 2 * MIN, 10, 5 * MIN, [(0, 5, MIN), (5 * MIN, 5, MIN)]),  # half/half
        (0, 3_600_000, 7, 5 * MIN, None),  # an hourly reading over twelve 5-min windows (checked below)
        (30_000, MIN, 1, MIN, [(0, 0, 30_000), (MIN, 1, 30_000)]),  # one person: lands once, not twice
        (0, MIN, 0, 5 * MIN, [(0, 0, MIN)]),  # zero is a real reading, not missing data
    ],
)
def test_apportion(start: int, dur: int, count: int, window: int, expected: list[tuple[int, int, int]] | None) -> None:
    out = apportion(start, dur, count, window)
    if expected is not None:
        assert out == expected
    assert sum(p for _, p, _ in out) == count
    assert sum(o for _, _, o in out) == dur


@given(
    start=st.integers(-10**12, 10**13),
    dur=st.integers(1, 86_400_000),
    count=st.integers(0, 10**7),
    window=st.sampled_from([1000, 60_000, 300_000, 900_000, 3_600_000]),
)
def test_apportion_loses_and_invents_no_one(start: int, dur: int, count: int, window: int) -> None:
    out = apportion(start, dur, count, window)
    assert sum(p for _, p, _ in out) == count
    assert all(p >= 0 for _, p, _ in out)
    for w, p, overlap in out:
        assert w % window == 0
        assert 0 < overlap <= window
        assert abs(p - count * overlap / dur) <= 1  # within one person of the exact proportion
    assert [w for w, _, _ in out] == sorted({w for w, _, _ in out})


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-27T14:14:00+01:00", 1_795_785_240_000),
        ("2026-11-27T13:14:00Z", 1_795_785_240_000),  # same instant, other offset
        ("2026-03-29T03:00:00+02:00", 1_774_746_000_000),  # first summer-time hour in Brussels
        ("2026-03-29T01:00:00Z", 1_774_746_000_000),
        ("2026-11-27T13:14:00.250Z", 1_795_785_240_250),
    ],
)
def test_parse_ts(text: str, ms: int) -> None:
    assert parse_ts(text) == ms


@pytest.mark.parametrize("text", ["2026-11-27T14:14:00", "2026-13-01T00:00:00Z", "yesterday"])
def test_parse_ts_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_ts(text)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (1_795_785_240_000, "2026-11-27T14:14:00+01:00"),  # winter: +01:00
        (1_774_745_999_000, "2026-03-29T01:59:59+01:00"),  # last second before the March change
        (1_774_746_000_000, "2026-03-29T03:00:00+02:00"),  # 02:00 does not exist: straight to 03:00
        (1_792_886_400_000, "2026-10-25T02:00:00+02:00"),  # October, 00:00 UTC: 02:00 summer time…
        (1_792_890_000_000, "2026-10-25T02:00:00+01:00"),  # …01:00 UTC: 02:00 again, winter time
    ],
)
def test_format_ts_in_brussels(ms: int, expected: str) -> None:
    assert format_ts(ms, "Europe/Brussels") == expected
