"""Browser tier: Debian's headless Chromium (driven by Selenium, no browser download), a real Valkey, and the
API as its own process, exactly as `drukte api` runs. Screenshots go to test-artifacts/screens/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from drukte import embedded

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "test-artifacts" / "screens"
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="package")
def store() -> Iterator[embedded.Service]:
    svc = embedded.start_store()
    yield svc
    svc.stop()


@pytest.fixture(scope="package")
def api(store: embedded.Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The shipped registry without opening hours: the tests set every level themselves, at any time of day
    # (outside opening hours the API would show stale data as `closed`, a rule tested with the registry).
    tmp = tmp_path_factory.mktemp("api")
    data = yaml.safe_load((ROOT / "deploy" / "registry" / "flanders.yaml").read_text(encoding="utf-8"))
    for city in data["cities"]:
        city.pop("opening_hours", None)
        for zone in city["zones"]:
            zone.pop("opening_hours", None)
    (tmp / "registry.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    port = embedded.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
    env.update(DRUKTE_REDIS_URL=store.url, DRUKTE_PORT=str(port), DRUKTE_LOG_LEVEL="warning",
               DRUKTE_REGISTRY=str(tmp / "registry.yaml"))
    log = tmp / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", "api"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        embedded.wait_for_port(port, proc, "the API")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def rds(store: embedded.Service) -> Iterator[redis.Redis]:
    client = redis.Redis(port=store.port)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: run `make test` (it installs "
                    "them) or apt-get install -y chromium chromium-driver")
    opts = Options()
    opts.binary_location = CHROMIUM
    # No background networking, component updates, sync or QUIC: on a closed network Chromium's own calls to
    # Google's hosts are refused, many at a time, and slow page loads down. A fresh profile per run.
    profile = tempfile.mkdtemp(prefix="drukte-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", "--lang=nl-BE", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.page_load_strategy = "eager"  # the pages are live: DOM ready is enough, the tests wait for content
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def blank_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """Leave each test on about:blank, so no page keeps its event stream open into the next test."""
    yield
    if "browser" in request.fixturenames:
        driver = request.getfixturevalue("browser")
        driver.get("about:blank")
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def viewport(driver: Any, width: int, height: int, mobile: bool = False) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def screenshot(driver: Any, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_until(what: str, pred: Callable[[], Any], timeout_s: float = 15.0, every_s: float = 0.05) -> Any:
    """Poll `pred` until truthy. Page loads get 15 s on a loaded CI machine; live updates pass their own 5 s."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (WCAG 2.1 A/AA and best practices)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]}).then((r) => done(r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary)}))));
    """)
    return [v for v in found if v["impact"] in ("serious", "critical")]


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
