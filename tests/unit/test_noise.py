"""P10: noise drawn once per window, the per-zone daily budget, and publication from noisy values only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.daytype import observation_key, slot_of_day
from streams.errors import RegistryError
from streams.noise import MICRO, Noise, NoisyCell, budget_key, noise_key, opendp_draw
from streams.publication import PrivacyPolicy, live_object
from streams.registry import DpRules, parse_registry
from streams.windows import Cell

REGISTRY_TEXT = """
cities:
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    privacy: {dp: {epsilon: 0.5, daily_budget: 1.5}}
    zones:
      - id: leuven-a
        name: A
        sensors: [{id: a-1, kind: street}, {id: a-2, kind: street}, {id: a-3, kind: street}]
      - id: leuven-b
        name: B
        sensors: [{id: b-1, kind: street}, {id: b-2, kind: street}, {id: b-3, kind: street}]
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: m-1, kind: street}, {id: m-2, kind: street}, {id: m-3, kind: street}]
"""
REG = parse_registry(REGISTRY_TEXT)
W = 300_000


def CAL(zone: str, start_ms: int) -> tuple[str, int]:  # the engine's Calendar: (history day key, slot of the day)
    tz = REG.city_of_zone[zone].timezone
    return observation_key(start_ms, tz), slot_of_day(start_ms, tz, W)


POLICY = PrivacyPolicy(k_min=15, min_sensors=3)
T0 = 1_795_785_000_000  # Fri 2026-11-27 14:10 Brussels
DAY = 86_400_000


class FakeDraw:
    """Adds the next offset of a cycle to the exact count and records every call."""

    def __init__(self, offsets: tuple[int, ...] = (3, -4, 0, 7)) -> None:
        self.offsets = offsets
        self.calls: list[tuple[int, float]] = []

    def __call__(self, exact: int, scale: float) -> int:
        self.calls.append((exact, scale))
        return exact + self.offsets[(len(self.calls) - 1) % len(self.offsets)]


def noise(draw: FakeDraw | None = None) -> tuple[Noise, FakeDraw]:
    d = draw or FakeDraw()
    return Noise.for_registry(REG, CAL, 3, d), d


def cell(visitors: int, i: int = 0, zone: str = "leuven-a", sensors: int = 3, t0: int = T0) -> Cell:
    return Cell(zone, t0 + i * W, t0 + (i + 1) * W, visitors, sensors, sensors * W)


def live(cells: list[Cell]) -> dict[str, Any]:
    return live_object(REG.zones[cells[0].zone_id], REG.city_of_zone[cells[0].zone_id], cells, POLICY,
                       window_ms=W, grace_ms=120_000)


# -- table tests ------------------------------------------------------------------------------------------------
def test_a_city_without_dp_is_untouched() -> None:
    nz, draw = noise()
    state: dict[str, Any] = {}
    c = cell(200, zone="mechelen-bruul")
    out, wrote = nz.publishable(state, [c])
    assert out == [c]
    assert type(out[0]) is Cell
    assert not wrote
    assert state == {}
    assert draw.calls == []
    assert live(out)["privacy"] == {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"}


def test_first_publication_draws_once_with_scale_one_over_epsilon() -> None:
    nz, draw = noise()
    state: dict[str, Any] = {}
    out, wrote = nz.publishable(state, [cell(200)])
    assert wrote
    assert draw.calls == [(200, 2.0)]
    (c,) = out
    assert isinstance(c, NoisyCell)
    assert c.visitors == 203
    assert not c.withheld
    assert (c.epsilon, c.budget_left) == (0.5, 1.0)
    assert state[budget_key("leuven-a", "2026-11-27")] == MICRO // 2
    assert live(out)["privacy"] == {"suppressed": False, "reason": None, "k_min": 15, "noise": "dp",
                                    "epsilon": 0.5, "budget_left": 1.0}


def test_a_republished_window_reads_its_noise_back() -> None:
    nz, _ = noise()
    state: dict[str, Any] = {}
    first, _ = nz.publishable(state, [cell(200)])
    # a crash before the window was marked final: the same window again, the table recovered from the changelog;
    # a new Noise object (a restarted worker) and an exact count that a late reading has since raised
    nz2, draw2 = noise(FakeDraw((50,)))
    again, wrote = nz2.publishable(state, [cell(201)])
    assert again == first
    assert not wrote
    assert draw2.calls == []
    assert live(again) == live(first)  # the same bytes: never a second version (P9)
    assert state[budget_key("leuven-a", "2026-11-27")] == MICRO // 2  # nothing spent twice


@pytest.mark.parametrize(
    ("exact", "offset", "reason", "visitors", "level"),
    [
        (40, -26, "below_k", None, "quiet"),  # exact over k, noisy 14 under: suppressed on the noisy value
        (5, 25, None, {"min": 30, "max": 40}, "normal"),  # exact 5 would be suppressed; noisy 30 (360/h) is shown
        (15, 0, None, {"min": 10, "max": 20}, "quiet"),  # noisy exactly k: published (15 × 12/h = 180/h: quiet)
        (3, -9, "below_k", None, "quiet"),  # a negative noisy count is simply below k
    ],
)
def test_suppression_level_and_range_come_from_the_noisy_value(exact: int, offset: int, reason: str | None,
                                                               visitors: dict[str, int] | None, level: str) -> None:
    nz, _ = noise(FakeDraw((offset,)))
    out, _ = nz.publishable({}, [cell(exact)])
    obj = live(out)
    assert (obj["privacy"]["reason"], obj["visitors"], obj["level"]["key"]) == (reason, visitors, level)


def test_few_sensors_draw_nothing_and_spend_nothing() -> None:
    nz, draw = noise()
    state: dict[str, Any] = {}
    out, wrote = nz.publishable(state, [cell(500, sensors=2)])
    assert draw.calls == []
    assert wrote
    assert state[budget_key("leuven-a", "2026-11-27")] == 0
    obj = live(out)
    assert obj["privacy"]["reason"] == "few_sensors"
    assert obj["privacy"]["budget_left"] == 1.5
    assert obj["level"]["key"] == "unknown"
    assert obj["visitors"] is None


def test_the_budget_stops_numbers_for_the_rest_of_the_local_day() -> None:
    nz, draw = noise(FakeDraw((0,)))
    state: dict[str, Any] = {}
    # budget 1.5 at ε 0.5: three windows get numbers, the fourth and later none, until the next local day
    out, _ = nz.publishable(state, [cell(100, i) for i in range(5)])
    assert [c.budget_left for c in out if isinstance(c, NoisyCell)] == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert [live([c])["privacy"]["reason"] for c in out] == [None, None, None, "dp_budget", "dp_budget"]
    assert live([out[3]])["level"]["key"] == "unknown"
    assert live([out[3]])["visitors"] is None
    assert len(draw.calls) == 3
    # the other zone of the city has its own budget
    other, _ = nz.publishable(state, [cell(100, 5, zone="leuven-b")])
    assert live(other)["privacy"]["reason"] is None
    # next local day (midnight Brussels is 23:00 UTC): numbers again
    midnight = T0 + 9 * 3_600_000 + 50 * 60_000  # 14:10 + 9h50 = 00:00 local
    nxt, _ = nz.publishable(state, [cell(100, 0, t0=midnight)])
    assert live(nxt)["privacy"]["reason"] is None
    assert isinstance(nxt[0], NoisyCell)
    assert nxt[0].budget_left == 1.0


def test_the_repeated_autumn_hour_spends_from_the_same_day() -> None:
    nz, _ = noise(FakeDraw((0,)))
    state: dict[str, Any] = {}
    first_0230 = 1_792_888_200_000  # 2026-10-25 00:30 UTC = 02:30 CEST; an hour later it is 02:30 CET again
    assert CAL("leuven-a", first_0230)[0] == "2026-10-25"
    assert CAL("leuven-a", first_0230 + 3_600_000)[0] == "2026-10-25.2"
    nz.publishable(state, [cell(100, i, t0=first_0230) for i in range(2)])
    out, _ = nz.publishable(state, [cell(100, i, t0=first_0230 + 3_600_000) for i in range(2)])
    assert [c.withheld for c in out if isinstance(c, NoisyCell)] == [False, True]  # 4 windows, budget for 3
    assert budget_key("leuven-a", "2026-10-25.2") not in state


def test_recall_shows_past_windows_as_published_and_never_draws() -> None:
    nz, draw = noise()
    state: dict[str, Any] = {}
    published, _ = nz.publishable(state, [cell(200, 0)])
    calls = len(draw.calls)
    exact_past = [cell(200, 0), cell(300, 1), cell(400, 0, zone="mechelen-bruul")]
    out = nz.recall(state, exact_past)
    assert out[0] == published[0]  # recorded: the noisy value
    assert isinstance(out[1], NoisyCell)
    assert out[1].withheld
    assert out[2] == exact_past[2]  # no DP: as it is
    assert nz.recall(state, published) == published
    assert len(draw.calls) == calls
    span = nz.recall(state, [cell(200, 0), *nz.publishable(state, [cell(210, 1)])[0]])
    assert [c.visitors for c in span] == [203, 206]  # the /live span sums noisy counts: 409, not the exact 410
    assert live(span)["visitors"] == {"min": 400, "max": 420}


def test_old_noise_is_forgotten_when_a_zone_starts_a_new_day() -> None:
    nz, _ = noise(FakeDraw((0,)))
    state: dict[str, Any] = {"b|leuven-a|2025-10-01": 5, "b|leuven-a|2025-11-01": 5, "b|leuven-b|2025-10-01": 5,
                             "h|leuven-a|2025-10-01": {"1": 20}}
    nz.publishable(state, [cell(100, 0, t0=T0 - 3 * DAY), cell(100, 0, t0=T0 - 1 * DAY)])
    nz.publishable(state, [cell(100, 0, t0=T0 - 2 * DAY), cell(100, 1, t0=T0 - 2 * DAY)])
    nz.publishable(state, [cell(100, 1, t0=T0)])  # a new day for leuven-a: 48 h back is kept
    assert noise_key("leuven-a", T0 - 3 * DAY) not in state
    assert {noise_key("leuven-a", T0 - 2 * DAY + W), noise_key("leuven-a", T0 - DAY), noise_key("leuven-a", T0 + W)
            } <= set(state)
    assert "b|leuven-a|2025-10-01" not in state
    assert "h|leuven-a|2025-10-01" not in state
    assert "b|leuven-a|2025-11-01" in state
    assert "b|leuven-b|2025-10-01" in state  # another zone's keys are its own


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("{dp: {epsilon: 0}}", "line 7: city leuven privacy dp: epsilon must be a number above 0 and at most 10"),
        ("{dp: {epsilon: lots}}", "line 7: city leuven privacy dp: epsilon must be a number above 0"),
        ("{dp: {epsilon: 11}}", "line 7: city leuven privacy dp: epsilon must be a number above 0 and at most 10"),
        ("{dp: {epsilon: true}}", "line 7: city leuven privacy dp: epsilon must be a number"),
        ("{dp: {epsilon: 1, daily_budget: 0.5}}", "daily_budget 0.5 is less than one window's epsilon 1"),
        ("{dp: {epsilom: 1}}", "line 7: city leuven privacy dp: unknown key 'epsilom'"),
        ("{noise: laplace}", "line 7: city leuven privacy: unknown key 'noise' (allowed: dp)"),
        ("[dp]", "line 7: city leuven privacy must be a mapping"),
    ],
)
def test_registry_refuses_a_bad_dp_block_naming_the_line(block: str, problem: str) -> None:
    text = REGISTRY_TEXT.replace("{dp: {epsilon: 0.5, daily_budget: 1.5}}", block)
    with pytest.raises(RegistryError) as exc:
        parse_registry(text)
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    ("block", "rules"),
    [
        ("{dp: {}}", DpRules(0.5, 144.0)),  # the defaults: ε 0.5, a whole day of 5-minute windows
        ("{dp: {epsilon: 1}}", DpRules(1.0, 144.0)),
        ("{dp: {daily_budget: 20}}", DpRules(0.5, 20.0)),
        ("{}", None),  # a privacy block without dp: no noise
    ],
)
def test_registry_dp_defaults(block: str, rules: DpRules | None) -> None:
    reg = parse_registry(REGISTRY_TEXT.replace("{dp: {epsilon: 0.5, daily_budget: 1.5}}", block))
    assert reg.cities[0].dp == rules
    assert reg.cities[1].dp is None


# -- properties -------------------------------------------------------------------------------------------------
EPS_BUDGETS = [(0.5, 1.5), (0.3, 1.0), (0.7, 2.0), (1.0, 1.0), (0.1, 0.35)]
DP_REGISTRIES = {eb: parse_registry(REGISTRY_TEXT.replace("epsilon: 0.5, daily_budget: 1.5",
                                                         f"epsilon: {eb[0]}, daily_budget: {eb[1]}"))
                 for eb in EPS_BUDGETS}


@settings(max_examples=100, deadline=None)
@given(
    eps_budget=st.sampled_from(EPS_BUDGETS),
    batches=st.lists(st.lists(st.tuples(st.sampled_from(["leuven-a", "leuven-b"]), st.integers(0, 600),
                                        st.integers(0, 60), st.integers(1, 4)), min_size=1, max_size=6),
                     min_size=1, max_size=12),
    crashes=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_budget_never_overspent_and_values_stable(eps_budget: tuple[float, float],
                                                  batches: list[list[tuple[str, int, int, int]]],
                                                  crashes: list[bool]) -> None:
    eps, budget = eps_budget
    draw = FakeDraw((5, -3, 0, 11, -20))
    nz = Noise.for_registry(DP_REGISTRIES[eps_budget], CAL, 3, draw)
    state: dict[str, Any] = {}
    seen: dict[tuple[str, int], NoisyCell] = {}
    for batch, crash in zip(batches, crashes, strict=False):
        # windows 10 minutes apart over four days, so budgets run out and days change; a window published in
        # an earlier batch is final and never comes again (P9), except right after a crash (below)
        cells = sorted({(z, i): Cell(z, T0 + i * 2 * W, T0 + i * 2 * W + W, v, s, s * W) for z, i, v, s in batch
                        if (z, T0 + i * 2 * W) not in seen}.values(), key=lambda c: c.start_ms)
        out, _ = nz.publishable(state, cells)
        if crash:  # republished after a crash, maybe with a late reading more: the same cells come out
            again, _ = nz.publishable(state, [Cell(c.zone_id, c.start_ms, c.end_ms, c.visitors + 1, c.sensors,
                                                   c.sensor_ms) for c in cells])
            assert again == out
        for c in out:
            assert isinstance(c, NoisyCell)
            seen[(c.zone_id, c.start_ms)] = c
            # read back as a past window of the /live span: the value it was published with
            assert nz.recall(state, [Cell(c.zone_id, c.start_ms, c.end_ms, 0, c.sensors, c.sensor_ms)])[0] == c
            assert c.budget_left >= 0
            if c.sensors < 3:
                assert c.withheld  # P7 windows draw nothing
            elif c.withheld:
                assert c.budget_left < eps - 1e-9  # withheld only when the budget could not pay for it
    # one draw per published window, and per zone and local day never more draws than the budget allows
    assert len(draw.calls) == len([c for c in seen.values() if not c.withheld])
    per_day = Counter((c.zone_id, CAL(c.zone_id, c.start_ms)[0].split(".")[0]) for c in seen.values()
                      if not c.withheld)
    for (zone, day), n in per_day.items():
        assert n * eps <= budget + 1e-9
        assert state[budget_key(zone, day)] <= round(budget * MICRO)


def test_production_draw_is_opendp_discrete_laplace() -> None:
    draw = opendp_draw()
    values = [draw(1000, 2.0) for _ in range(400)]
    assert all(isinstance(v, int) for v in values)
    assert 990 < sum(values) / len(values) < 1010  # centred on the exact count (sd of the mean ≈ 0.14)
    assert len(set(values)) > 5  # really random, really integer


def test_the_api_model_carries_the_dp_block_and_leaves_other_payloads_as_they_are() -> None:
    from api.models import ZoneLive

    nz, _ = noise()
    for cells in (nz.publishable({}, [cell(200)])[0], [cell(200, zone="mechelen-bruul")]):
        obj = {k: v for k, v in live(cells).items() if k != "as_of_ms"}
        assert ZoneLive.model_validate(obj).model_dump(mode="json") == obj


def test_baselines_read_the_published_noisy_history_only() -> None:
    nz, _ = noise(FakeDraw((0, 5)))
    state: dict[str, Any] = {}
    budget_day = [cell(100, i) for i in range(4)]  # budget for three: the fourth is withheld
    nz.publishable(state, [*budget_day, cell(300, 4, sensors=2)])
    day = observation_key(T0, "Europe/Brussels")
    assert CAL("leuven-a", T0) == (day, 170)  # 14:10
    exact = {str(s): [100, 3] for s in range(170, 174)} | {"174": [300, 2], "160": [80, 3]}  # 160: before DP
    assert nz.history(state, "leuven-a", day, exact) == {
        "170": [100, 3], "171": [105, 3], "172": [100, 3],  # the noisy counts as published
        "174": [0, 2],  # too few sensors: baselines skip it anyway
    }  # 173 (withheld by the budget) and 160 (published before DP) are left out: no published count
    assert nz.history(state, "mechelen-bruul", day, exact) == exact  # no DP: the exact history
