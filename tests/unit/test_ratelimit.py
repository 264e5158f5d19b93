"""The per-client token bucket: what passes, what waits and for how long, and that memory stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.ratelimit import RateLimiter, retry_after_s


def takes(limiter: RateLimiter, key: str, times: list[float]) -> list[float]:
    return [limiter.take(key, t) for t in times]


@pytest.mark.parametrize(
    ("per_min", "times", "waits"),
    [
        # a new client has a full bucket: per_min requests at once, the next waits 60/per_min s
        (3, [0, 0, 0, 0], [0, 0, 0, 20]),
        # one token back every 20 s at 3 a minute
        (3, [0, 0, 0, 20, 20], [0, 0, 0, 0, 20]),
        # a refused request costs nothing: the wait shrinks as time passes
        (3, [0, 0, 0, 5, 15], [0, 0, 0, 15, 5]),
        # an idle client gets at most a full bucket back, never more
        (2, [0, 0, 1000, 1000, 1000], [0, 0, 0, 0, 30]),
        # 600 a minute: ten a second sustained
        (600, [0.0] * 600 + [0.0, 0.1], [0.0] * 600 + [0.1, 0.0]),
        # a clock jumping back an hour refills nothing, and refills again from its new time: no stall
        (1, [3700, 100, 160], [0, 60, 0]),
    ],
)
def test_bucket_waits(per_min: int, times: list[float], waits: list[float]) -> None:
    got = takes(RateLimiter(per_min), "a", times)
    assert got == pytest.approx(waits)


def test_clients_have_their_own_buckets() -> None:
    limiter = RateLimiter(1)
    assert limiter.take("a", 0) == 0
    assert limiter.take("a", 0) == pytest.approx(60)
    assert limiter.take("b", 0) == 0  # b is not slowed down by a


def test_memory_is_bounded_full_buckets_go_first() -> None:
    limiter = RateLimiter(60, max_clients=3)
    for _ in range(60):
        limiter.take("busy", 0)  # empty; 10 tokens back at t=10: not full, so not forgotten
    for i in range(2):
        limiter.take(f"idle-{i}", 0)
    limiter.take("new", 10)  # 4 keys > 3: idle-0 and idle-1 are full again after 10 s at 1/s; dropped
    assert len(limiter) == 2
    for _ in range(10):
        assert limiter.take("busy", 10) == 0
    assert limiter.take("busy", 10) == pytest.approx(1)  # its bucket was kept: 10 tokens, not 60
    # with nothing full, the least recently seen client is forgotten
    tight = RateLimiter(1, max_clients=2)
    for key in ("a", "b", "c"):
        tight.take(key, 0)
    assert len(tight) == 2
    assert tight.take("a", 0) == 0  # forgotten, so a full bucket again
    assert tight.take("c", 0) == pytest.approx(60)  # remembered: still empty


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 0.5)), max_size=200), st.integers(1, 1200))
@settings(max_examples=200, deadline=None)
def test_never_more_than_a_bucket_plus_the_refill(steps: list[tuple[str, float]], per_min: int) -> None:
    """Property: in any sequence, a client passes at most capacity + elapsed * rate requests."""
    limiter = RateLimiter(per_min)
    now = 0.0
    passed = {"a": 0, "b": 0, "c": 0}
    for key, dt in steps:
        now += dt
        wait = limiter.take(key, now)
        assert wait >= 0
        if wait == 0:
            passed[key] += 1
        else:
            assert wait <= 60 / per_min + 1e-9  # never asked to wait longer than one token takes
    for count in passed.values():
        assert count <= per_min + now * per_min / 60 + 1e-6


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: int) -> None:
    assert retry_after_s(wait) == header


@pytest.mark.parametrize(("per_min", "max_clients"), [(0, 10), (-1, 10), (10, 0)])
def test_nonsense_limits_are_refused(per_min: int, max_clients: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(per_min, max_clients)
