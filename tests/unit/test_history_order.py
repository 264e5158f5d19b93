"""The demo's history order: this weekday's weeks first (today's bands), newest first; every day once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drukte.simulator import history_order

DAY = 86_400_000
END = 1_795_785_300_000  # 2026-11-27 13:15 UTC: a quarter-hour, not midnight


def test_eight_weeks_send_this_weekdays_days_first_newest_first() -> None:
    order = history_order(END - 56 * DAY, END)
    urgent = [(a, b) for a, b, u in order if u]
    assert urgent == [(END - 7 * k * DAY, END - (7 * k - 1) * DAY) for k in range(1, 9)]
    assert [u for _, _, u in order] == [True] * 8 + [False] * 48
    rest = [a for a, _, u in order if not u]
    assert rest == sorted(rest, reverse=True)


@given(days=st.integers(0, 120), part_ms=st.integers(0, DAY - 1))
def test_every_moment_is_sent_once(days: int, part_ms: int) -> None:
    start = END - days * DAY - part_ms
    order = history_order(start, END)
    spans = sorted((a, b) for a, b, _ in order)
    assert all(b - a <= DAY for a, b in spans)
    assert [a for a, _ in spans[1:]] == [b for _, b in spans[:-1]]  # contiguous, no overlap
    assert (spans[0][0], spans[-1][1]) == (start, END) if spans else start == END
