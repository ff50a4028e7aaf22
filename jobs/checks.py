"""The error of a bad setting, and the small checks that raise it (shared by the config
modules of this package)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting has a value that is not allowed. The message names the setting."""


def positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is not allowed: {name} must be a whole number >= 1")


def one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of {', '.join(allowed)}")


def at_least(name: str, value: float, low: float, what: str = "") -> None:
    if value < low:
        raise ConfigError(f"{name}={value!r} is not allowed: must be >= {low:g}{what}")
