"""Settings: read once from DRUKTE_*, frozen, with messages that say what to fix."""

from __future__ import annotations

import pytest

from drukte.errors import SettingsError
from drukte.settings import load_settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRUKTE_WINDOW_S": "7"}, "does not divide an hour"),  # windows must align to the clock
        ({"DRUKTE_WINDOW_S": "300", "DRUKTE_LIVE_S": "1000"}, "multiple of DRUKTE_WINDOW_S"),
        ({"DRUKTE_K_MIN": "0"}, "DRUKTE_K_MIN"),  # k = 0 would publish a lone walker
        ({"DRUKTE_FAST_GROUPS": "maybe"}, "DRUKTE_FAST_GROUPS"),
        ({"DRUKTE_LOG_LEVEL": "loud"}, "DRUKTE_LOG_LEVEL"),
        ({"DRUKTE_NOT_A_SETTING": "1"}, ""),  # unknown variables are ignored by pydantic-settings
    ],
)
def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if not message:
        assert load_settings().k_min == 15
        return
    with pytest.raises(SettingsError, match=message):
        load_settings()


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("false", False), ("1", True), ("true", True)])
def test_booleans_are_parsed_not_truthy(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    # bool("0") is True in Python; pydantic parses it properly
    monkeypatch.setenv("DRUKTE_FAST_GROUPS", value)
    assert load_settings().fast_groups is expected


def test_frozen_and_blank_urls_mean_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRUKTE_KAFKA_URL", "")
    s = load_settings()
    assert s.kafka_url is None
    assert s.stale_after_s == 2 * 300 + 120 + 30
    with pytest.raises(ValueError, match="frozen"):
        s.k_min = 1  # type: ignore[misc]
