"""Wire contracts: one JSON Schema per topic and version, with golden example payloads beside them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson

SCHEMA_DIR = Path(str(resources.files(__name__)))


def load(topic: str) -> dict[str, Any]:
    """The JSON Schema of a topic, e.g. `load("footfall.counts.v1")`."""
    data: dict[str, Any] = orjson.loads((SCHEMA_DIR / f"{topic}.json").read_bytes())
    return data


def examples(topic: str, kind: str) -> list[Path]:
    """Golden example files of a topic; kind is `valid` or `invalid`."""
    return sorted((SCHEMA_DIR / "examples" / topic / kind).glob("*.json"))
