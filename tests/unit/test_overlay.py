"""The write-back overlay: reads as the state with its changes applied, hands over one net change per key."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.overlay import Overlay

KEYS = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(st.tuples(st.sampled_from(["set", "del"]), KEYS, st.integers(0, 9)), max_size=30)


def test_reads_through_until_written() -> None:
    base = {"a": 1, "b": 2}
    o = Overlay(base)
    assert (o["a"], o.get("zz"), o.get("zz", 7)) == (1, None, 7)
    o["a"] = 10
    del o["b"]
    o["c"] = 3
    assert (o["a"], o.get("b"), o["c"]) == (10, None, 3)
    assert ("b" in o, "c" in o, sorted(o), len(o)) == (False, True, ["a", "c"], 2)
    assert base == {"a": 1, "b": 2}  # the state is untouched until the changes are applied
    with pytest.raises(KeyError):
        o["b"]
    with pytest.raises(KeyError):
        del o["b"]


def test_changes_are_net_per_key() -> None:
    o = Overlay({"a": 1, "b": 2})
    o["a"] = 5
    o["a"] = 6  # written twice: one write
    o["c"] = 1
    del o["c"]  # created and deleted in the batch: nothing to delete in the state
    del o["b"]
    assert o.changes() == ({"a": 6}, ["b"])


@given(base=st.dictionaries(KEYS, st.integers(0, 9)), ops=OPS)
def test_applying_changes_equals_writing_the_state_directly(base: dict[str, int], ops: list[Any]) -> None:
    direct = dict(base)
    o = Overlay(dict(base))
    for op, key, value in ops:
        for target in (direct, o):
            if op == "set":
                target[key] = value
            elif key in target:
                del target[key]
    assert dict(o) == direct
    applied = dict(base)
    writes, deletes = o.changes()
    applied.update(writes)
    for key in deletes:
        del applied[key]
    assert applied == direct
    assert len(writes) + len(deletes) <= len({key for _, key, _ in ops})
