"""`drukte up` tells where to look: the pages people use first, then the API and metrics."""

from __future__ import annotations

from drukte.registry_check import load_registry
from drukte.settings import Settings
from drukte.stack import _urls


def test_up_prints_the_pages_of_the_first_city_and_zone() -> None:
    settings = Settings(port=8091, metrics_port=9199)
    text = _urls(settings, load_registry(settings.registry))
    assert "http://127.0.0.1:8091/widget/mechelen-bruul?lang=nl" in text
    assert "http://127.0.0.1:8091/zone/mechelen-bruul?lang=nl" in text
    assert "http://127.0.0.1:8091/dashboard/mechelen?lang=nl" in text
    assert "http://127.0.0.1:9199/metrics" in text
    assert "Ctrl-C" in text


def test_the_history_note_is_dutch_first_with_french_and_english() -> None:
    from drukte.stack import _history_note

    lines = _history_note(56).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["Geschiedenis", "Historique", "Loading"]
    assert all("56" in line for line in lines)
