"""Token buckets per client, in process memory, with the clock as an argument: the API's rate-limit policy.

Each client key has a bucket of `capacity` tokens, refilled continuously at `per_min / 60` tokens per second;
a request takes one token or is refused with the seconds until one is back. A client idle for a minute may
spend a minute's worth at once; sustained, it gets `per_min` requests a minute.

Memory is bounded: past `max_clients` keys, buckets that are full again (equal to a new one) are dropped, and
if that is not enough the least recently seen client is forgotten (it gets a full bucket on its next request).
"""

from __future__ import annotations

import math


class RateLimiter:
    """`take(key, now_s)` answers 0.0 when a request may pass, else the seconds to wait (> 0)."""

    def __init__(self, per_min: int, max_clients: int = 10_000) -> None:
        if per_min < 1:
            msg = f"a rate limit needs at least 1 request per minute, got {per_min}"
            raise ValueError(msg)
        if max_clients < 1:
            msg = f"max_clients must be at least 1, got {max_clients}"
            raise ValueError(msg)
        self.capacity = float(per_min)
        self.rate_per_s = per_min / 60.0
        self.max_clients = max_clients
        # key -> (tokens, time of last update in s); insertion order = least recently seen first
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now_s: float) -> float:
        tokens, last_s = self._buckets.pop(key, (self.capacity, now_s))
        # a clock that jumps back refills nothing now, and refills from its new time on (never stalls)
        tokens = min(self.capacity, tokens + max(0.0, now_s - last_s) * self.rate_per_s)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self.rate_per_s
        self._buckets[key] = (tokens, now_s)
        if len(self._buckets) > self.max_clients:
            self._shrink(now_s)
        return wait_s

    def _shrink(self, now_s: float) -> None:
        full = [k for k, (tokens, last_s) in self._buckets.items()
                if tokens + max(0.0, now_s - last_s) * self.rate_per_s >= self.capacity]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]


def retry_after_s(wait_s: float) -> int:
    """`Retry-After` in whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s))
