"""A take of zone-topic messages cut into parts of bounded size (`agents.footfall.parts`), applied one after the
other as smaller takes would be: every message once, in log order, none split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from agents.footfall import parts


@dataclass
class Event:
    value: bytes


def sizes(events: list[Any]) -> list[int]:
    return [len(e.value) for e in events]


def test_a_take_within_the_budget_is_one_part() -> None:
    events = [Event(b"x" * 10) for _ in range(5)]
    assert [sizes(p) for p in parts(cast(Any, events), 50)] == [[10] * 5]


def test_parts_close_before_the_message_that_would_overflow_them() -> None:
    events = [Event(b"x" * n) for n in (30, 30, 10, 60, 5)]
    assert [sizes(p) for p in parts(cast(Any, events), 50)] == [[30], [30, 10], [60], [5]]


def test_an_empty_take_has_no_parts() -> None:
    assert list(parts([], 50)) == []


@given(st.lists(st.integers(0, 100), max_size=60), st.integers(1, 150))
def test_every_message_once_in_order_and_parts_within_budget(lengths: list[int], budget: int) -> None:
    events = [Event(bytes(n)) for n in lengths]
    cut = list(parts(cast(Any, events), budget))
    assert [e for p in cut for e in p] == cast(Any, events)  # the same objects, in log order
    assert all(p for p in cut)
    assert all(sum(sizes(p)) <= budget or len(p) == 1 for p in cut)  # only a lone big message exceeds it
