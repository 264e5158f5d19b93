"""Pure helpers of bench/api.py: reading wrk's report and nearest-rank percentiles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is not an installed package: import it from the checkout this test lives in
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.api import parse_wrk, pct

WRK = """Running 15s test @ http://127.0.0.1:8080/v1/zones/mechelen-bruul/live
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   295.93ms  100.00ms 776.73ms   70.00%
  Latency Distribution
     50%  850.00us
     75%    2.10ms
     90%    5.50ms
     99%    1.20s
  2175 requests in 15.00s, 3.33MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    145.00
Transfer/sec:    227.31KB
"""


def test_parse_wrk_reads_rate_percentiles_in_ms_and_errors() -> None:
    got = parse_wrk(WRK)
    assert got["requests_per_s"] == 145.0
    assert got["requests"] == 2175
    assert got["p50_ms"] == 0.85   # us → ms
    assert got["p90_ms"] == 5.5
    assert got["p99_ms"] == 1200.0  # s → ms
    assert got["non_2xx"] == 7
    assert got["socket_errors"] == 5


@pytest.mark.parametrize(("q", "expected"), [
    (0.5, 5.0),   # nearest rank 5 of 10
    (0.99, 10.0),  # rank 10
    (0.0, 1.0),   # the smallest
])
def test_pct_nearest_rank(q: float, expected: float) -> None:
    assert pct([float(x) for x in range(1, 11)], q) == expected


def test_pct_of_nothing_is_zero() -> None:
    assert pct([], 0.5) == 0.0
