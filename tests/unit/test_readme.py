"""The README stays true: quick start commands and every setting in the configuration table."""

from __future__ import annotations

from pathlib import Path

import pytest

from drukte.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"| `DRUKTE_{name.upper()}` |" in README


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_quick_start(command: str) -> None:
    assert command in README.split("## Architecture")[0]
