"""Bad input through the real worker: the hand-made corpus between valid batches. Nothing crashes, every bad
message is on ingest.rejected.v1 with its reason, every valid reading is counted once."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from tests.e2e.conftest import MIN, Stack
from tests.e2e.workload import ENV, assert_matches_truth, ground_truth, make_workload, published

pytestmark = pytest.mark.e2e


def load_corpus() -> ModuleType:
    path = Path(__file__).parents[1] / "unit" / "footfall_corpus.py"  # tests/unit is no package
    spec = importlib.util.spec_from_file_location("footfall_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("footfall_corpus", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bad_input_between_valid_batches(stack: Stack) -> None:
    fc = load_corpus()
    wl = make_workload(60)
    big, big_readings = fc.many_readings(wl.base_ms - 60 * MIN)  # 10,000 readings, the hour before
    now = int(time.time() * 1000)
    messages, reasons, valid = [big], [[]], list(big_readings)
    cases = fc.corpus(now, wl.base_ms)
    for m, batch in enumerate(wl.batches):
        messages.append(batch)
        reasons.append([])
        if m < len(cases):  # after minute m's batch: a case whose valid readings are in minute m
            case = fc.corpus(now, wl.base_ms + m * MIN)[m]
            messages.append(case.raw)
            reasons.append(case.reasons)
            valid += case.valid
    valid += wl.readings
    assert len(cases) < len(wl.batches)

    worker = stack.spawn("worker", log="worker", **ENV)
    stack.produce(messages, max_request_size=8 * 1024 * 1024)

    truth = ground_truth(valid, wl.base_ms - 60 * MIN, 120)
    assert_matches_truth(published(stack, len(truth), timeout_s=180), truth)
    expected = Counter((offset, reason) for offset, rs in enumerate(reasons) for reason in rs)
    rejected = stack.consume("ingest.rejected.v1", lambda rs: len(rs) >= expected.total(), timeout_s=30)
    assert Counter((r["offset"], r["reason"]) for r in rejected) == expected
    assert all(r["topic"] == "footfall.counts.v1" for r in rejected)
    assert worker.poll() is None
    assert "Traceback" not in stack.log("worker")
