"""Which devices this process may use: the vendors' visible-devices variables, defined once.

ASCEND_RT_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES hold *logical* ids; a cell uses the first
``chips`` of them (device 0 of this process first).
"""

from __future__ import annotations

import os

VISIBLE_ENV = {"npu": "ASCEND_RT_VISIBLE_DEVICES", "cuda": "CUDA_VISIBLE_DEVICES"}


def visible(kind: str, devices_per_cell: int) -> list[str]:
    """The first devices_per_cell entries of *_VISIBLE_DEVICES (the devices the cell uses), or the
    indices 0..devices_per_cell-1 when the variable is unset."""
    items = [v.strip() for v in os.environ.get(VISIBLE_ENV[kind], "").split(",") if v.strip()]
    return items[:devices_per_cell] if items else [str(i) for i in range(devices_per_cell)]


def visible_ids(kind: str) -> list[int] | None:
    """Integer ids in the kind's *_VISIBLE_DEVICES, or None (unset, empty, or not integers)."""
    value = os.environ.get(VISIBLE_ENV.get(kind, ""), "").strip()
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(v.isdigit() for v in items):
        return None
    return [int(v) for v in items]
