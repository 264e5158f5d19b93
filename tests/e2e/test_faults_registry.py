"""A broken registry: `drukte worker` refuses to start, non-zero, naming the file and line, rather than run
half-configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import REGISTRY, Stack

pytestmark = pytest.mark.e2e
GOOD = REGISTRY.read_text()


def line_of(text: str) -> int:
    return next(n for n, line in enumerate(GOOD.splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("name", "broken", "message"),
    [
        # the same sensor twice: its counts would go to one zone only
        ("duplicate_sensor", GOOD.replace("{id: tt-main-02, kind: street}", "{id: tt-main-01, kind: street}"),
         f":{line_of('tt-main-02')}: sensor id 'tt-main-01' already used on line {line_of('tt-main-02')}"),
        # YAML that does not parse: a list left open (found on the next line, which names the one it began on)
        ("yaml_syntax", GOOD.replace("sensors: [{id: tt-side-01", "sensors: [[{id: tt-side-01"),
         f":{line_of('tt-side-01') + 1}: not valid YAML: expected ',' or ']', but got '-' (while parsing a flow "
         f"sequence on line {line_of('tt-side-01')})"),
        # a time zone that does not exist: weekdays and holidays would be wrong
        ("bad_timezone", GOOD.replace("timezone: Europe/Brussels", "timezone: Europe/Mechelen"),
         f":{line_of('timezone')}:"),
    ],
)
def test_worker_refuses_a_broken_registry(stack: Stack, tmp_path: Path, name: str, broken: str,
                                          message: str) -> None:
    assert broken != GOOD
    path = tmp_path / f"{name}.yaml"
    path.write_text(broken)
    worker = stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(path))
    assert worker.wait(30) != 0
    log = stack.log("worker")
    assert f"{path}{message}" in log, log
    assert "Worker ready" not in log


def test_worker_refuses_a_missing_registry(stack: Stack, tmp_path: Path) -> None:
    worker = stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(tmp_path / "nowhere.yaml"))
    assert worker.wait(30) != 0
    assert f"{tmp_path / 'nowhere.yaml'}: cannot read the registry file" in stack.log("worker")
