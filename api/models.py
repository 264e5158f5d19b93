"""Response models of the HTTP API, for the OpenAPI document; field names are the contract's (CONTRACT.md §4).

The routes serve the stored JSON as it is (after `streams.freshness.refresh`) rather than re-serialising it
through these models; the component tests check that every served object round-trips through them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

LevelKey = Literal["quiet", "normal", "busy", "very_busy", "unknown", "closed"]

LIVE_EXAMPLE: dict[str, Any] = {
    "zone_id": "mechelen-bruul", "city_id": "mechelen", "name": "Bruul",
    "as_of": "2026-11-27T14:20:00+01:00",
    "window": {"start": "2026-11-27T14:05:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 900},
    "level": {"key": "busy", "nr": 2, "label": {"nl": "Druk", "fr": "Animé", "en": "Busy"}},
    "index": 134, "score": 78, "vs_usual": "busier", "usual": {"low": 85, "high": 118},
    "visitors": {"min": 1190, "max": 1240},
    "forecast": [{"start": "2026-11-27T14:30:00+01:00", "index": 128, "level": "busy"}],
    "quality": {"stale": False, "age_s": 74, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
    "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"},
    "next_update_in_s": 226,
}


class Label(BaseModel):
    nl: str
    fr: str
    en: str


class Level(BaseModel):
    key: LevelKey = Field(description="stable code; `unknown` = no fresh data (never shown as quiet)")
    nr: int | None = Field(description="0 quiet … 3 very busy, for ordering; null for unknown and closed")
    label: Label


class Window(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
    seconds: int = Field(description="length of the span the figures cover")


class Band(BaseModel):
    low: int = Field(description="p20 of past weeks on the index scale")
    high: int = Field(description="p80 of past weeks on the index scale")


class VisitorRange(BaseModel):
    min: int
    max: int


class ForecastPoint(BaseModel):
    start: AwareDatetime
    index: int | None
    level: LevelKey


class Quality(BaseModel):
    stale: bool = Field(description="true when the data is older than the configured limit")
    age_s: int | None = Field(description="whole seconds since `as_of`; null without data")
    coverage: float = Field(description="share of expected sensor-time that reported, 0–1")
    sensors_reporting: int
    sensors_expected: int


class Privacy(BaseModel):
    suppressed: bool = Field(description="numbers withheld by the privacy rules")
    reason: str | None = Field(description="why numbers are withheld: below_k, few_sensors, or dp_budget (the "
                                           "zone spent its daily differential-privacy budget)")
    k_min: int | None = Field(description="fewest people a published window may show")
    noise: str = Field(description="`none`, or `dp` when differential-privacy noise was added")
    epsilon: float | None = Field(None, description="with `noise: dp`: the ε (privacy loss) of each published "
                                                    "window; only present then")
    budget_left: float | None = Field(None, description="with `noise: dp`: the ε the zone may still spend on its "
                                                        "local day; at 0 it publishes no numbers until the next day "
                                                        "(`reason: dp_budget`); only present then")

    @model_serializer(mode="wrap")
    def _dp_fields_only_with_dp(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]  # an annotated return would replace the fields in the OpenAPI schema
        data = handler(self)
        if self.noise != "dp":
            data.pop("epsilon", None)
            data.pop("budget_left", None)
        return data


class DevicesLive(BaseModel):
    """Distinct WiFi/BLE devices in the zone's newest published device window (PRIVACY.md P1–P3, P6, P7)."""

    visitors: VisitorRange | None = Field(description="distinct devices, as a range; null if suppressed")
    suppressed: bool = Field(description="numbers withheld by the privacy rules")
    reason: str | None = Field(description="why numbers are withheld: below_k or few_sensors")
    as_of: AwareDatetime | None = Field(description="end of that window; null before the first one")
    window: Window | None
    stale: bool = Field(description="true when the window is older than the configured limit")


class ZoneLive(BaseModel):
    """The live object of one zone: the last `DRUKTE_LIVE_S` seconds of published windows, summed.

    A zone with WiFi/BLE scanners in the registry also carries `devices` (see `DevicesLive`); other zones
    have no such member."""

    model_config = ConfigDict(json_schema_extra={"examples": [LIVE_EXAMPLE]})

    zone_id: str
    city_id: str
    name: str
    as_of: AwareDatetime | None = Field(description="end of the newest published window; null without data")
    window: Window | None
    level: Level
    index: int | None = Field(description="100 = the usual value for this weekday and time of day")
    score: int | None = Field(description="0–100, 100 = the zone's usual weekly peak")
    vs_usual: Literal["quieter", "usual", "busier"] | None
    usual: Band | None
    visitors: VisitorRange | None = Field(description="people counted in `window`, as a range; null if suppressed")
    forecast: list[ForecastPoint] = Field(description="the next two hours, per window")
    quality: Quality
    privacy: Privacy
    next_update_in_s: int | None = Field(description="seconds until the next window is due; 0 when overdue")


class CityLive(BaseModel):
    city_id: str
    name: str
    as_of: AwareDatetime | None = Field(description="the newest `as_of` of the city's zones")
    zones: list[ZoneLive] = Field(description="every zone of the city, in registry order")


class SensorSummary(BaseModel):
    id: str
    kind: Literal["street", "entrance"]


class ZoneSummary(BaseModel):
    id: str
    name: str
    area_m2: int | None
    sensors_expected: int
    sensors: list[SensorSummary]


class CitySummary(BaseModel):
    id: str
    name: str
    timezone: str = Field(description="IANA time zone that decides weekdays, hours and holidays")
    country: str
    zones: list[ZoneSummary]


class Cities(BaseModel):
    cities: list[CitySummary]


class Health(BaseModel):
    status: Literal["ok"]


class CityFreshness(BaseModel):
    age_s: int | None = Field(description="whole seconds since the city's newest live object; null: none stored")
    stale: bool = Field(description="true when `age_s` is over `stale_after_s` or null")


class Ready(BaseModel):
    """Ready: the store answers, a worker ticked within 30 s, and at least one city has fresh live data.

    A 503 problem carries the same `checks`, `stale_after_s` and `cities` as extension members.
    """

    status: Literal["ready"]
    checks: dict[str, str] = Field(
        description="`store`, `worker`, `data`: `ok` or what is wrong; `data` also names stale cities when "
                    "others are fresh (still ready)")
    stale_after_s: int = Field(description="live data older than this is stale (`DRUKTE_STALE_S`)")
    cities: dict[str, CityFreshness] = Field(description="per city id, the age of its newest live object")


class Problem(BaseModel):
    """RFC 9457 problem details, served as `application/problem+json`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="problem type URI")
    title: str = Field(description="short summary of the problem type (the HTTP status phrase)")
    status: int
    detail: str | None = Field(None, description="what went wrong here and what to do about it")
    instance: str | None = Field(None, description="the request path")
