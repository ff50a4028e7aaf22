"""One composition of the config per launch instead of Hydra's two.

Hydra 1.3 composes a launch's whole config twice: once in ``Hydra.get_mode`` only to read
``hydra.mode``, then again for the run or the multirun. Our configs never set ``hydra.mode``
(tests/unit/test_compose_once.py holds them to that), so the first composition can only find
what the command line says: :func:`mode_from_overrides` reads ``hydra.mode=`` from the
overrides (the last one wins, as in composition) and Hydra decides the rest from
``-m``/``--multirun`` as it does when ``hydra.mode`` is unset. A launch saves ~0.13 s of CPU
(docs/benchmarks.md §11); errors are found and reported by the one composition that remains.
"""

from __future__ import annotations

from typing import Any


def mode_from_overrides(overrides: list[str]) -> Any:
    """The RunMode a ``hydra.mode=`` override asks for, else None (unset, deleted, or a value
    that is not a mode: the composition then reports it)."""
    from hydra.types import RunMode

    mode = None
    for text in overrides:
        key, eq, value = text.partition("=")
        if key.lstrip("+~") != "hydra.mode":
            continue
        mode = None if key.startswith("~") or not eq else _mode(RunMode, value)
    return mode


def _mode(run_mode: Any, value: str) -> Any:
    """A mode by name (RUN, MULTIRUN) or by number (1, 2), as OmegaConf converts an enum."""
    if value.isdigit():
        return next((m for m in run_mode if m.value == int(value)), None)
    return run_mode.__members__.get(value)


def install() -> None:
    """Replace Hydra's ``get_mode`` composition by :func:`mode_from_overrides`. Idempotent."""
    from hydra._internal.hydra import Hydra

    if getattr(Hydra.get_mode, "from_overrides", False):
        return

    def get_mode(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        return mode_from_overrides(overrides)

    get_mode.from_overrides = True  # type: ignore[attr-defined]
    Hydra.get_mode = get_mode  # type: ignore[method-assign]


__all__ = ["install", "mode_from_overrides"]
