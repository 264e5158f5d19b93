"""One exception root for Drukte.

    DrukteError
    ├── InvalidInput (ValueError)      a message or reading we reject; `.reason` is the rejection reason
    ├── RegistryError (ValueError)     a registry file that is wrong; carries line numbers
    └── SettingsError (ValueError)     configuration that cannot work
"""

from __future__ import annotations


class DrukteError(Exception):
    """Root of every error Drukte raises on purpose."""

    retriable = False


class InvalidInput(DrukteError, ValueError):
    """A message or reading that goes to the rejected topic with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RegistryError(DrukteError, ValueError):
    """A registry that cannot be used; `problems` are `(line, message)` pairs, line 0 = unknown."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"line {ln}: {m}" if ln else m for ln, m in problems))


class SettingsError(DrukteError, ValueError):
    """Configuration that cannot work."""
