"""The auditor's attack 7 (issue 5, P10): with DP on, one passage more or less changes the probability of any
published output by at most a factor e^ε, and a zone publishes nothing more once its daily budget is spent.

The check draws from the production mechanism (`streams.noise.Noise` with its default OpenDP draw, the scale it
derives from the registry's ε), many times for a window of 20 people and for the same window with 21: for every
output value seen often enough to estimate (and for the two tails as sets) the ratio of the two frequencies must
not exceed e^ε by more than sampling error allows (4 standard errors of the log ratio). The discrete Laplace
mechanism meets the bound with equality at every output, so the check has no slack to hide a weaker mechanism:
with half the scale (`scale_for` returning `SENSITIVITY / epsilon / 2`, i.e. ε doubled) the ratios are e^(2ε) and
`test_one_passage_moves_no_output_by_more_than_e_epsilon` fails; `test_the_check_catches_half_the_noise` runs the
same check on such a mechanism and asserts that it is caught, so the check's power is itself tested.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson

from streams.daytype import observation_key
from streams.noise import Noise, NoisyCell, opendp_draw, scale_for
from streams.publication import PrivacyPolicy, live_object
from streams.registry import parse_registry
from streams.windows import Cell

EPSILON = 0.5
REG = parse_registry(f"""
cities:
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    privacy: {{dp: {{epsilon: {EPSILON}, daily_budget: 2}}}}
    zones:
      - id: leuven-a
        name: A
        sensors: [{{id: a-1, kind: street}}, {{id: a-2, kind: street}}, {{id: a-3, kind: street}}]
""")
ZONE, CITY = REG.zones["leuven-a"], REG.cities[0]
W = 300_000
T0 = 1_795_785_000_000  # Fri 2026-11-27 14:10 Brussels
SAMPLES = 6_000  # per neighbouring input; a few seconds of OpenDP draws
MIN_COUNT = 100  # outputs seen fewer times in either sample are pooled into the tails
Z = 4.0  # standard errors of sampling tolerated (over ~30 outputs × 2 directions: a false alarm ≈ 1 in 500)


def calendar(zone: str, start_ms: int) -> tuple[str, int]:
    return observation_key(start_ms, REG.city_of_zone[zone].timezone), 0


def cell(visitors: int, i: int = 0) -> Cell:
    return Cell(ZONE.id, T0 + i * W, T0 + (i + 1) * W, visitors, 3, 3 * W)


def production_outputs(exact: int, n: int) -> Counter[int]:
    """`n` noisy counts of a window of `exact` people, as the worker draws them: each a first publication (a fresh
    table), through `Noise.publishable` with the production draw."""
    noise = Noise.for_registry(REG, calendar, 3)
    out: Counter[int] = Counter()
    for _ in range(n):
        (c,), _drawn = noise.publishable({}, [cell(exact)])
        assert isinstance(c, NoisyCell)
        assert not c.withheld
        out[c.visitors] += 1
    return out


def worst_excess(a: Counter[int], b: Counter[int], epsilon: float) -> tuple[float, str]:
    """The largest `log(P_a(S) / P_b(S)) - ε - Z·se` over output sets S (each well-sampled value, and the two
    tails), in both directions; above 0 means some output is more than e^ε likelier with one passage more or less
    than sampling error explains."""
    na, nb = sum(a.values()), sum(b.values())
    common = sorted(v for v in set(a) | set(b) if a[v] >= MIN_COUNT and b[v] >= MIN_COUNT)
    if not common:
        return math.inf, "no output is common to both: (almost) no noise"
    lo, hi = common[0], common[-1]
    sets: dict[str, tuple[int, int]] = {str(v): (a[v], b[v]) for v in range(lo, hi + 1)}
    sets[f"<{lo}"] = (sum(c for v, c in a.items() if v < lo), sum(c for v, c in b.items() if v < lo))
    sets[f">{hi}"] = (sum(c for v, c in a.items() if v > hi), sum(c for v, c in b.items() if v > hi))
    worst, where = -math.inf, ""
    for name, (ca, cb) in sets.items():
        if ca < MIN_COUNT // 4 or cb < MIN_COUNT // 4:
            continue  # too rare to estimate a ratio (a tail of a few draws)
        log_ratio = math.log((ca / na) / (cb / nb))
        se = math.sqrt(1 / ca + 1 / cb)
        for direction in (log_ratio, -log_ratio):
            excess = direction - epsilon - Z * se
            if excess > worst:
                worst, where = excess, f"output {name}: log ratio {direction:+.3f} vs ε {epsilon} (se {se:.3f})"
    return worst, where


def test_one_passage_moves_no_output_by_more_than_e_epsilon() -> None:
    with_him, without_him = production_outputs(21, SAMPLES), production_outputs(20, SAMPLES)
    excess, where = worst_excess(with_him, without_him, EPSILON)
    assert excess <= 0, f"P10 broken: {where}"
    assert len(set(with_him) & set(without_him)) >= 20  # noise of ± several people, as ε 0.5 should give


def test_the_check_catches_half_the_noise() -> None:
    """The same check on OpenDP's mechanism at half the scale (ε doubled) must fail: the test has power."""
    draw = opendp_draw()
    half = scale_for(EPSILON) / 2
    a = Counter(draw(21, half) for _ in range(SAMPLES))
    b = Counter(draw(20, half) for _ in range(SAMPLES))
    excess, _where = worst_excess(a, b, EPSILON)
    assert excess > 0


def published(c: Cell) -> dict[str, Any]:
    return live_object(ZONE, CITY, [c], PrivacyPolicy(k_min=15, min_sensors=3), window_ms=W, grace_ms=120_000)


def test_publishing_stops_when_the_budget_is_spent() -> None:
    """Budget 2 at ε 0.5: four windows with numbers, then none for the rest of the local day; and a withheld
    window's published bytes do not depend on the count at all (an empty street and a crowd look the same)."""
    noise = Noise.for_registry(REG, calendar, 3)
    state: dict[str, Any] = {}
    objs = [published(c) for c in noise.publishable(state, [cell(300, i) for i in range(10)])[0]]
    assert [o["privacy"]["budget_left"] for o in objs] == [1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert all(o["visitors"] is not None and o["privacy"]["noise"] == "dp" for o in objs[:4])
    for o in objs[4:]:
        assert (o["privacy"]["reason"], o["visitors"], o["index"], o["score"]) == ("dp_budget", None, None, None)
        assert o["level"]["key"] == "unknown"
    before = dict(state)
    crowd = noise.publishable(state, [cell(5000, 20)])[0]
    empty = Noise.for_registry(REG, calendar, 3).publishable(before, [cell(0, 20)])[0]
    assert orjson.dumps(published(crowd[0])) == orjson.dumps(published(empty[0]))
