"""`drukte up` (what `make demo` runs): the URLs appear only once a first visitor would see every field filled.

The whole stack as the demo starts it: embedded broker and store, worker, API and the simulator with history,
the shipped four-city registry, default windows and the demo's eight weeks of history (of which this weekday's
eight days go first). Fewer weeks would test something else: three is the fewest a usual band takes, and with
three Leuven (differential privacy on) had no usual band yet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drukte import embedded, warmup
from drukte.registry_check import load_registry
from drukte.settings import DEFAULT_REGISTRY

URLS_HEADER = "Drukte draait / tourne / is running:"
NUMBERS = ("index", "usual", "vs_usual", "score")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def gaps(base: str) -> list[str]:
    """What a first visitor would find empty, checked field by field (independently of drukte.warmup)."""
    out = []
    registry = load_registry(DEFAULT_REGISTRY)
    for city in registry.cities:
        for live in get(f"{base}/v1/cities/{city.id}/live")["zones"]:
            zone = live["zone_id"]
            if live["quality"]["stale"] is not False:
                out.append(f"{zone}: stale")
            if not live["forecast"]:
                out.append(f"{zone}: no forecast")
            if live["level"]["key"] not in ("quiet", "closed"):
                out += [f"{zone}: {f} empty" for f in NUMBERS if live.get(f) is None]
    # the rest of today (what a merchant plans with): the urgent history covers this time of day onwards; the
    # hours before now come with the paced days (README)
    since = datetime.now(UTC) - timedelta(minutes=25)
    for zone_id in registry.zones:
        today = get(f"{base}/v1/zones/{zone_id}/today")
        ahead = [w for w in today["windows"] if datetime.fromisoformat(w["start"]) >= since]
        with_band = [w for w in ahead if w.get("usual")]
        if len(with_band) < 0.9 * len(ahead) or not today["peak_hours"]:
            out.append(f"{zone_id}: usual bands in {len(with_band)} of the {len(ahead)} windows left today")
    return out


def stuck(base: str, metrics_port: int) -> str:
    """What `drukte up` was still waiting for (its progress bar rewrites one line, which a line reader never
    gets): the zones not yet complete, as it asks the API, and the windows the worker has published."""
    wait = warmup.Warmup(load_registry(DEFAULT_REGISTRY), base, f"http://127.0.0.1:{metrics_port}/metrics")
    left = wait.incomplete()
    return f"windows published {wait.published()}, zones not complete {None if left is None else left[:8]}"


def story(log: Path) -> str:
    """The children's log without the lines a busy worker repeats many times a second."""
    noise = ("producer buffer full", "producer flush took", "woke up too late")
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if not any(n in ln for n in noise)]
    return "\n".join(ln[:240] for ln in lines[-40:])


@pytest.mark.timeout(600)
def test_up_prints_the_urls_once_every_field_is_filled(tmp_path: Path) -> None:
    port = embedded.free_port()
    metrics_port = next(p for p in iter(embedded.free_port, None) if p != port)  # two calls may return one port
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRUKTE_", "PYTEST_"))}
    env.update(DRUKTE_PORT=str(port), DRUKTE_METRICS_PORT=str(metrics_port), DRUKTE_DATA_DIR=str(tmp_path / "data"))
    errors = (tmp_path / "up.log").open("wb")  # the children's logs: read when something fails
    proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", "up", "--history-days", "56"], env=env,
                            stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    seen: list[str] = []
    header = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            seen.append(line)
            if URLS_HEADER in line:
                header.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert header.wait(480), ("no URLs after 8 min; " + stuck(base, metrics_port) + "; output:\n"
                                  + "".join(seen)[-2000:] + "\nlogs:\n" + story(tmp_path / "up.log"))
        assert gaps(base) == []
        text = "".join(seen)
        before = text[:text.index(URLS_HEADER)]
        assert "Geschiedenis (56 dagen) wordt geladen" in before  # Dutch first, with French and English
        assert "history / geschiedenis" in before  # the progress bar ran before
        time.sleep(1.0)
        assert "every field filled after" in "".join(seen)
        assert f"{base}/widget/mechelen-bruul?lang=nl" in "".join(seen)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        reader.join(5)
        proc.stdout.close()
        errors.close()
    assert code == 0
    assert "Stopped." in "".join(seen)
