"""Window math in integer epoch milliseconds, half-open `[start, end)`, aligned to the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def window_start(ts_ms: int, window_ms: int) -> int:
    """Start of the window holding `ts_ms`. Python's floor division keeps this right before 1970 too."""
    return ts_ms - ts_ms % window_ms


def apportion(start_ms: int, dur_ms: int, count: int, window_ms: int) -> list[tuple[int, int, int]]:
    """Split `count` people over `[start, start+dur)` into the windows it overlaps, by time, in whole people.

    Returns `(window_start, people, overlap_ms)` per window. The shares sum to exactly `count`: share i is
    floor(count·t_i/dur) − floor(count·t_{i-1}/dur) over cumulative overlaps t, so no one is lost or invented
    and each share is within one person of the exact proportion.
    """
    end = start_ms + dur_ms
    w = window_start(start_ms, window_ms)
    if end <= w + window_ms:  # inside one window: nearly every reading (a counter's minute, quarter, hour)
        return [(w, count, dur_ms)]
    out: list[tuple[int, int, int]] = []
    done_ms = 0
    taken = 0
    while w < end:
        overlap = min(end, w + window_ms) - max(start_ms, w)
        done_ms += overlap
        upto = count * done_ms // dur_ms
        out.append((w, upto - taken, overlap))
        taken = upto
        w += window_ms
    return out


# Both conversions repeat: a batch's readings share a few start times, and every zone's window has the same
# bounds. Caching them halves the worker's per-reading work (bench/README.md).
@lru_cache(maxsize=8192)
def parse_ts(text: str) -> int:
    """ISO 8601 with an offset → epoch ms. Raises ValueError for text that is no real date or has no offset."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        msg = f"{text!r} has no UTC offset"
        raise ValueError(msg)
    return (dt - _EPOCH) // _MS


@lru_cache(maxsize=8192)
def format_ts(ts_ms: int, tz: str) -> str:
    """Epoch ms → ISO 8601 in the city's time zone, seconds precision, e.g. 2026-11-27T14:20:00+01:00."""
    dt = _EPOCH + timedelta(milliseconds=ts_ms)
    return dt.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")
