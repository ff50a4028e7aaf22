"""The per-process model cache: one loaded model per device, so a long-lived worker (one Ray
actor per device) loads each model once.

What is cached is whatever holds a loaded model: a :class:`~workers.base.Backend` (static
cells) or a :class:`~workers.serving.server.Server` (serving cells, where the server loads the
model). Either is keyed by what makes a model load different; loading another evicts (closes)
the one before it, and a failed cell drops every model (``drop_models``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from jobs.config import CellConfig
from jobs.identity import model_key
from workers.device import health

log = logging.getLogger(__name__)


class Loaded(Protocol):
    """What the cache holds: loads once, closes when dropped."""

    name: str
    simulated: bool

    def load(self) -> None: ...

    def close(self) -> None: ...


_LOADED: dict[tuple, Loaded] = {}
LOAD_COUNT: dict[str, int] = {"loads": 0}


def cache_key(cell: CellConfig, device_kind: str) -> tuple:
    return (model_key(cell), device_kind)


def is_loaded(cell: CellConfig, device_kind: str) -> bool:
    return cache_key(cell, device_kind) in _LOADED


def get_model(cell: CellConfig, device: Any, make: Callable[[], Loaded]) -> tuple[Any, bool, float]:
    """(the loaded model, reused, load seconds); ``make()`` builds it when it is not loaded.
    Evicts a different model first: one model per device."""
    key = cache_key(cell, device.kind)
    if key in _LOADED:
        return _LOADED[key], True, 0.0
    drop_models()
    loaded = make()
    t0 = time.perf_counter()
    with health.loading(device.kind, loaded.simulated):
        loaded.load()
    load_s = time.perf_counter() - t0
    LOAD_COUNT["loads"] += 1
    _LOADED[key] = loaded
    log.info("[%s] loaded %s in %.2f s", cell.model.name, loaded.name, load_s)
    return loaded, False, load_s


def drop_models() -> None:
    for loaded in _LOADED.values():
        try:
            loaded.close()
        except Exception:  # closing must not hide the original problem
            log.exception("closing a backend failed")
    _LOADED.clear()
