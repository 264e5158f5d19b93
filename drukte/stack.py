"""`drukte up`: the whole stack as child processes, stopped together on Ctrl-C, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships neither types nor a py.typed marker

from drukte import embedded, warmup
from drukte.registry_check import load_registry
from drukte.settings import Settings
from streams.registry import Registry

WARMUP_LIMIT_S = 15 * 60  # then print the URLs anyway: a slow machine still gets its demo
# the API's completeness check reads every city and zone: at most every 5 s, well inside the API's per-client
# rate limit (600 a minute by default), which the person about to open the pages shares from 127.0.0.1
ASK_EVERY_S = 5.0


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
    registry = load_registry(settings.registry)
    warming = None
    if simulator and history_days > 0:
        print(_history_note(history_days), flush=True)
        warming = _Progress(settings, registry, history_days)
    else:
        print(_urls(settings, registry), flush=True)
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"drukte up: the {name} stopped with exit code {proc.returncode}; "
                      f"stopping everything (see the messages above)", file=sys.stderr)
                stopping, code = True, 1
                break
        if warming is not None and not stopping and warming.poll():
            print(_urls(settings, registry) + warming.outcome(), flush=True)
            warming = None
        time.sleep(0.3)
    if warming is not None:
        warming.close()
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
    """What `drukte up` says while the history loads (Dutch first)."""
    return (f"Geschiedenis ({days:g} dagen) wordt geladen; de adressen volgen zodra elk veld gevuld is.\n"
            f"Historique ({days:g} jours) en chargement ; les adresses suivent dès que chaque champ est rempli.\n"
            f"Loading {days:g} days of history; the URLs follow once every field is filled.\n")


class _Progress:
    """The history's progress bar; `poll` (about once a second) says when to print the URLs."""

    def __init__(self, settings: Settings, registry: Registry, history_days: float) -> None:
        base = f"http://127.0.0.1:{settings.port}"
        metrics = f"http://127.0.0.1:{settings.metrics_port}/metrics" if settings.metrics_port else None
        self.warmup = warmup.Warmup(registry, base, metrics)
        self.total = warmup.expected_windows(registry, history_days, settings.window_s)
        self.started = self.last = self.asked = time.monotonic()
        self.left: list[str] | None = None
        self.bar = tqdm(total=self.total, unit=" windows", desc="history / geschiedenis", file=sys.stdout,
                        dynamic_ncols=True, mininterval=1.0)

    def poll(self) -> bool:
        now = time.monotonic()
        if now - self.last < 1.0:
            return False
        self.last = now
        published = self.warmup.published()
        if published is not None:
            self.bar.n = min(published, self.total - 1)  # done only when the live objects say so
            self.bar.refresh()
        if now - self.asked < ASK_EVERY_S:
            return False
        self.asked = now
        self.left = self.warmup.incomplete()
        if self.left == [] or now - self.started > WARMUP_LIMIT_S:
            if self.left == []:
                self.bar.n = self.total
            self.close()
            return True
        return False

    def outcome(self) -> str:
        waited = f"{time.monotonic() - self.started:.0f} s"
        if self.left == []:
            return (f"Elk veld gevuld na {waited} / chaque champ rempli après {waited} / "
                    f"every field filled after {waited}.\n")
        some = ", ".join((self.left or ["?"])[:5])
        return (f"Na {waited} nog niet compleet ({some}…): de geschiedenis laadt verder / pas encore complet, "
                f"l'historique continue / not complete yet, history keeps loading.\n")

    def close(self) -> None:
        self.bar.close()
