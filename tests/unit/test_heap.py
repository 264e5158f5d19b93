"""The worker's malloc thresholds (`drukte.heap.tune_malloc`): taken by glibc here, skipped where there is no
glibc."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from drukte.heap import tune_malloc


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
