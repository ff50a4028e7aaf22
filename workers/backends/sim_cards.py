"""Which simulated card this worker is, and what a bad one does (backend.sim.slow_cards,
hot_cards, leaky_cards; workers/backends/sim.py says what each does)."""

from __future__ import annotations

import os
from typing import Any

from jobs.config import CellConfig
from jobs.record import Flag
from workers.device.visible import VISIBLE_ENV

NODE_INDEX_ENV = "RAY_CELLS_NODE_INDEX"  # set by the ray_cells launcher (its _fleet.py)
LEAK_BYTES = 2 * 2**30
HOT_TEMP_C = 95.0


def this_card(kind: str) -> str:
    """NODE:CARD of this worker's first device (see the module docstring)."""
    node = os.environ.get(NODE_INDEX_ENV, "0").strip() or "0"
    env = VISIBLE_ENV.get(kind)
    ids = [v.strip() for v in os.environ.get(env, "").split(",") if v.strip()] if env else []
    return f"{node}:{ids[0] if ids else '0'}"


def card_faults(cell: CellConfig, kind: str) -> tuple[set[str], dict[str, Any], list[Flag]]:
    """(which of slow/hot/leaky this card is, its health keys, its flags)."""
    o, card = cell.backend.sim, this_card(kind)
    bad = {n for n in ("slow", "hot", "leaky") if card in getattr(o, f"{n}_cards")}
    fields: dict[str, Any] = {}
    flags: list[Flag] = []
    if "hot" in bad:
        fields.update(throttle_reasons=["simulated: hot card"], temp_c_end=HOT_TEMP_C)
        flags.append(Flag.THROTTLED)
    if "leaky" in bad:
        fields.update(memory_leftover_bytes=LEAK_BYTES)
        flags.append(Flag.DIRTY_START)
    return bad, fields, flags
