"""`drukte up` with history: hold the URLs back until a first visitor would see every field filled.

The demo sends this weekday's eight weeks of history first (`drukte.simulator.history_order`); the worker needs a
few minutes for them on a laptop. Printing the URLs at once would show empty usual bands and forecasts to the
person who just typed `make demo`, so `drukte up` shows a progress bar (windows the worker has published out of
the windows those days hold) and prints the URLs when every zone's live object is complete, or after a time
limit with a note that the history is still loading.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from streams.registry import Registry

WEEK_DAYS = 7
NUMBERS = ("index", "usual", "vs_usual", "score")  # shown whenever the level shows numbers
NO_NUMBERS = frozenset({"quiet", "closed"})  # below k (P6) or a shut street: numbers are absent by design
BANDED_SHARE = 0.9  # of today's windows still ahead that must carry a usual band


def urgent_days(history_days: float) -> int:
    """How many of `history_days` days the simulator sends first: the same weekday, 7, 14, … days back."""
    return int(history_days // WEEK_DAYS)


def expected_windows(registry: Registry, history_days: float, window_s: int) -> int:
    """Zone windows those urgent days hold (a clock-change day holds one hour more or less: close enough for
    a progress bar, which never claims done before the live objects say so)."""
    return urgent_days(history_days) * (86_400 // window_s) * len(registry.zones)


def zone_filled(live: dict[str, Any]) -> bool:
    """Would a first visitor see this zone's live object complete? Fresh, with a 2-hour forecast, and the
    index, usual band, vs_usual and score wherever the level shows numbers."""
    quality = live.get("quality") or {}
    if quality.get("stale") is not False or not live.get("forecast"):
        return False
    if (live.get("level") or {}).get("key") in NO_NUMBERS:
        return True
    return all(live.get(field) is not None for field in NUMBERS)


def today_filled(today: dict[str, Any], now: datetime) -> bool:
    """Does the zone's day view (`/v1/zones/{zone}/today`, the merchant page's popular times) hold usual bands
    for the rest of the day, and so peak hours? At night, when the live object rightly shows no numbers, this
    still tells whether this weekday's history is in.

    Peak hours alone are not enough: the urgent days run from this time of day onwards, so while the third of
    them is still in the worker, the bands stop at the hour it has reached (seen: 69 of 213 windows, with peak
    hours already shown)."""
    ahead = [w for w in today.get("windows") or [] if datetime.fromisoformat(w["start"]) >= now]
    banded = sum(1 for w in ahead if w.get("usual"))
    return bool(today.get("peak_hours")) and banded >= BANDED_SHARE * len(ahead)


def missing(lives: Iterable[dict[str, Any]]) -> list[str]:
    """Zone ids whose live object is not yet complete (see `zone_filled`)."""
    return [str(live.get("zone_id")) for live in lives if not zone_filled(live)]


def published_windows(metrics_text: str) -> int:
    """The sum of `drukte_windows_published_total` over zones in a Prometheus text exposition."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("drukte_windows_published_total{") or line.startswith("drukte_windows_published_total "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _get(url: str, timeout_s: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (our own local URLs)
            body: bytes = resp.read()
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None  # not up yet, or busy: asked again next time


class Warmup:
    """Polled by `drukte up` about once a second: progress from the worker's metrics, completeness from the
    API's city live objects (exactly what the pages read)."""

    def __init__(self, registry: Registry, api_base: str, metrics_url: str | None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry, self.api_base, self.metrics_url, self.now = registry, api_base, metrics_url, now

    def published(self) -> int | None:
        if self.metrics_url is None:
            return None
        body = _get(self.metrics_url)
        return published_windows(body.decode()) if body is not None else None

    def incomplete(self) -> list[str] | None:
        """Zones not yet complete (live object, then day view), or None when the API did not answer."""
        out: list[str] = []
        for city in self.registry.cities:
            body = _get(f"{self.api_base}/v1/cities/{city.id}/live")
            if body is None:
                return None
            out += missing(json.loads(body).get("zones") or [])
        if out:
            return out
        for zone_id in self.registry.zones:
            body = _get(f"{self.api_base}/v1/zones/{zone_id}/today")
            if body is None:
                return None
            if not today_filled(json.loads(body), self.now()):
                out.append(zone_id)
        return out
