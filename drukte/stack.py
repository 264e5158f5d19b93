"""`drukte up`: the whole stack as child processes, stopped together on Ctrl-C, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from drukte import embedded
from drukte.registry_check import load_registry
from drukte.settings import Settings
from streams.registry import Registry


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "drukte.cli", *args], env=env, stdin=subprocess.DEVNULL,
        preexec_fn=embedded._die_with_parent,
    )


def up(settings: Settings, *, simulator: bool, history_days: float = 0.0) -> int:
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = dict(os.environ)
    env["DRUKTE_REGISTRY"] = str(settings.registry)
    env["DRUKTE_PORT"] = str(settings.port)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if settings.kafka_url is None:
        broker = embedded.start_broker(log=logs / "broker.log")
        env["DRUKTE_KAFKA_URL"] = broker.url
        # an embedded broker lives in memory: short group timeouts are safe and make starts quick
        env.setdefault("DRUKTE_FAST_GROUPS", "true")
        print(f"  broker (Tansu, embedded)   {broker.url}")
    if settings.redis_url is None:
        store = embedded.start_store(log=logs / "store.log")
        env["DRUKTE_REDIS_URL"] = store.url
        print(f"  store (Valkey, embedded)   {store.url}")
    children = {"worker": _spawn(["worker"], env), "api": _spawn(["api"], env)}
    if simulator:
        children["simulator"] = _spawn(["simulate", "--history-days", str(history_days)], env)
    print(_urls(settings, load_registry(settings.registry)), flush=True)
    if simulator and history_days > 0:
        print(_history_note(history_days), flush=True)
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"drukte up: the {name} stopped with exit code {proc.returncode}; "
                      f"stopping everything (see the messages above)", file=sys.stderr)
                stopping, code = True, 1
                break
        time.sleep(0.3)
    print("Stopping…", flush=True)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in children.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    embedded.stop_all()
    print("Stopped.")
    return code


def _urls(settings: Settings, registry: Registry) -> str:
    """Where to look: the pages people use first, then the API and metrics."""
    base = f"http://127.0.0.1:{settings.port}"
    city = registry.cities[0]
    zone = city.zones[0]
    return f"""
Drukte draait / tourne / is running:
  city screen   {base}/widget/{zone.id}?lang=nl        ({zone.name}, {city.name})
  merchants     {base}/zone/{zone.id}?lang=nl
  dashboard     {base}/dashboard/{city.id}?lang=nl
  API           {base}/v1/cities   ·   {base}/v1/cities/{city.id}/live   ·   docs {base}/docs
  metrics       {base}/metrics  (worker: http://127.0.0.1:{settings.metrics_port}/metrics)
Stop with Ctrl-C.
"""


def _history_note(days: float) -> str:
    """What a first visitor sees while the history loads (Dutch first)."""
    return (f"Geschiedenis ({days:g} dagen) wordt geladen: gewoonlijk, index en voorspelling verschijnen binnen "
            f"enkele minuten.\nHistorique ({days:g} jours) en chargement : l'habituel, l'indice et la prévision "
            f"apparaissent en quelques minutes.\nLoading {days:g} days of history: usual bands, index and forecast "
            "appear within a few minutes.\n")
