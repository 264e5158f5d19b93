"""Re-export of the exception root, so edges import errors from one place."""

from streams.errors import DrukteError, InvalidInput, RegistryError, SettingsError

__all__ = ["DrukteError", "InvalidInput", "RegistryError", "SettingsError"]
