"""Reading a registry file: `load_registry` for the processes, `check_file` for `drukte registry check`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from streams.errors import RegistryError
from streams.registry import Registry, parse_registry


class RegistryFileError(RegistryError):
    """A `RegistryError` that knows its file, so every line reads `FILE:LINE: message`."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        super().__init__(problems)
        self.path = path
        self.args = ("\n".join(_where(path, line, msg) for line, msg in problems),)


def _where(path: Path, line: int, msg: str) -> str:
    # Line 0 means "somewhere in the file"; editors and CI annotations understand FILE:LINE: only for real lines.
    return f"{path}:{line}: {msg}" if line else f"{path}: {msg}"


def _read(path: Path) -> str:
    """The file's text; `OSError` when it cannot be read, `RegistryError` when it is not UTF-8."""
    data = path.read_bytes()
    try:
        # utf-8-sig drops the byte-order mark some Windows editors write.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RegistryError([(line, f"not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8")]) from exc


def _beside(path: Path) -> Callable[[str], str]:
    """Reads files the registry names (`merchants_csv`), relative to the registry's own folder."""
    return lambda name: _read(path.parent / name)


def load_registry(path: Path) -> Registry:
    """Read and parse the registry at `path`; any problem, a missing file included, raises `RegistryError`."""
    try:
        return parse_registry(_read(path), _beside(path))
    except OSError as exc:
        raise RegistryFileError(path, [(0, f"cannot read the registry file: {exc.strerror or exc}")]) from exc
    except RegistryError as exc:
        raise RegistryFileError(path, exc.problems) from exc


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_file(path: Path, out: TextIO) -> int:
    """Validate the registry at `path`, reporting to `out`; 0 = valid, 1 = problems found, 2 = unreadable."""
    try:
        registry = parse_registry(_read(path), _beside(path))
    except OSError as exc:
        out.write(f"FOUT: kan {path} niet lezen (cannot read the registry file): {exc.strerror or exc}\n")
        return 2
    except RegistryError as exc:
        for line, msg in exc.problems:
            out.write(_where(path, line, msg) + "\n")
        n = len(exc.problems)
        out.write(
            f"{_count(n, 'probleem', 'problemen')} gevonden; verbeter {'het' if n == 1 else 'ze'} en controleer "
            f"opnieuw ({_count(n, 'problem', 'problems')} found; fix {'it' if n == 1 else 'them'} and run "
            f"`drukte registry check {path}` again)\n"
        )
        return 1
    counts = ", ".join([
        _count(len(registry.cities), "stad", "steden"),
        _count(len(registry.zones), "zone", "zones"),
        _count(len(registry.sensors), "sensor", "sensoren"),
        _count(len(registry.merchants), "handelaar", "handelaars"),
    ])
    out.write(f"OK: {counts} (cities/zones/sensors/merchants)\n")
    return 0
