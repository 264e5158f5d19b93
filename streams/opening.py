"""Opening hours of a shopping zone, in the city's own wall-clock time: when a quiet street is `closed`.

A registry gives, per day type, spans like "10:00-18:00" or "09:30-12:30, 13:30-18:00", or "closed"; a
public holiday uses its own entry, or Sunday's when it has none (as the usual band does). A span may end at
24:00; a night that runs past midnight is two spans, one on each day. A zone without opening hours is never
`closed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from streams.daytype import HOLIDAY, HOLIDAY_BASELINE, WEEKDAYS, day_type, local_time

DAY_KEYS = (*WEEKDAYS, HOLIDAY)
CLOSED = "closed"
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
MINUTE_MS = 60_000

Spans = tuple[tuple[int, int], ...]  # [open, close) in minutes after local midnight


@dataclass(frozen=True, slots=True)
class OpeningHours:
    days: Mapping[str, Spans]  # a key of DAY_KEYS → spans; "holiday" may be absent (then Sunday's apply)

    def spans(self, kind: str) -> Spans:
        if kind == HOLIDAY and HOLIDAY not in self.days:
            kind = HOLIDAY_BASELINE
        return self.days.get(kind, ())


def parse_spans(text: str) -> Spans:
    """"10:00-18:00", "09:30-12:30, 13:30-18:00" or "closed" → minute spans; ValueError says what is wrong."""
    text = text.strip()
    if text == CLOSED:
        return ()
    spans = []
    for part in text.split(","):
        m = _SPAN.match(part.strip())
        if m is None:
            msg = f"{part.strip()!r} is not a span like 10:00-18:00 (or write 'closed')"
            raise ValueError(msg)
        start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
        if end > 24 * 60 or end <= start:
            msg = f"{part.strip()!r}: the end must be after the start and at most 24:00 (split a night in two days)"
            raise ValueError(msg)
        spans.append((start, end))
    spans.sort()
    for (_, end1), (start2, _) in pairwise(spans):
        if start2 < end1:
            msg = f"{text!r}: spans overlap"
            raise ValueError(msg)
    return tuple(spans)


def is_open(hours: OpeningHours | None, ts_ms: int, tz: str, country: str) -> bool:
    """Open at `ts_ms` by the local wall clock; always open without opening hours."""
    if hours is None:
        return True
    local = local_time(ts_ms, tz)
    minute = local.hour * 60 + local.minute
    return any(a <= minute < b for a, b in hours.spans(day_type(ts_ms, tz, country)))


def closed_throughout(hours: OpeningHours | None, start_ms: int, end_ms: int, tz: str, country: str) -> bool:
    """Closed during all of `[start_ms, end_ms)`, checked at every whole minute (spans are whole minutes)."""
    if hours is None:
        return False
    first = start_ms - start_ms % MINUTE_MS
    return not any(is_open(hours, t, tz, country) for t in range(first, end_ms, MINUTE_MS))
