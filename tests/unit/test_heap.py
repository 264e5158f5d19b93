"""The worker's heap settings: malloc thresholds (`drukte.heap.tune_malloc`), taken by glibc here and skipped
where there is no glibc; the garbage collector's (`tune_gc`)."""

from __future__ import annotations

import ctypes.util
import gc
import platform
import weakref
from collections.abc import Iterator

import pytest

from drukte.heap import GC_YOUNG, tune_gc, tune_malloc


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_thresholds() -> None:
    assert tune_malloc() is True


def test_without_a_c_library_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert tune_malloc() is False


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, name: str) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert tune_malloc() is False


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as it was: tune_gc changes the whole test process."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_what_exists_at_start_is_frozen_and_young_collections_are_rarer() -> None:
    built = [{"state": i} for i in range(1000)]  # what the worker built before it starts
    tune_gc()
    assert gc.get_freeze_count() >= len(built)
    assert gc.get_threshold() == (GC_YOUNG, 10, 10)
    assert not any(o is built for o in gc.get_objects())  # no generation holds it: no collection walks it


@pytest.mark.usefixtures("collector")
def test_cycles_made_after_it_are_still_collected() -> None:
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
