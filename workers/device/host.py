"""What only the host running a cell can tell: is the model here, does the cell fit in the
memory left, and how busy other processes kept the host while the cell was measured."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from bounds.roofline import memory_floor
from jobs.config import CellConfig
from workers.base import CellOOM

log = logging.getLogger(__name__)

GB = 1e9
# Average cores other processes may use during a whole-node cell before it counts as busy
# (Ray's own daemons and the driver use a little).
BUSY_TOLERANCE_CORES = 0.5


class HostCheckFailed(RuntimeError):
    """The cell cannot run on this host (its model directory is not here, ...)."""


def check_model_here(cell: CellConfig) -> None:
    """The model directory must exist on the host that runs the cell."""
    path = cell.model.path
    if path and not os.path.isfile(os.path.join(path, "config.json")):
        raise HostCheckFailed(
            f"model.path={path!r} is not a model directory on host {socket.gethostname()} "
            "(every node needs the model at the same path)"
        )


def check_fits(
    cell: CellConfig, config: dict[str, Any], dtype: str, loaded: bool, available: int | None
) -> int | None:
    """Refuse (CellOOM) a cell whose weights and KV cache alone exceed the memory available;
    returns that floor in bytes (None when the model's shape is not known)."""
    try:
        floor = memory_floor(config, dtype, cell.batch, cell.seq, cell.prompt_len)
    except (ValueError, KeyError):
        return None
    need = floor.kv_cache_bytes + (0 if loaded else floor.weight_bytes)
    if available is not None and need > available:
        what = "KV cache" if loaded else "weights + KV cache"
        raise CellOOM(
            f"does not fit: the {what} alone need {need / GB:.2f} GB "
            f"(batch {cell.batch} x {cell.prompt_len + cell.seq} tokens), "
            f"{available / GB:.2f} GB available; not run"
        )
    return floor.total_bytes


@dataclass
class ActivityWindow:
    """CPU time of the whole host and of this process over a measured window."""

    wall: float
    host_busy_s: float
    own_s: float

    @property
    def others_cores(self) -> float:
        """Average cores used by other processes during the window."""
        return max(0.0, self.host_busy_s - self.own_s) / self.wall if self.wall > 0 else 0.0


class HostActivity:
    """Samples host CPU use around the measured window (psutil; never fails the cell)."""

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float, float]:
        import psutil

        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        own = psutil.Process().cpu_times()
        return time.perf_counter(), busy, own.user + own.system

    def start(self) -> None:
        try:
            self._start = self._now()
        except Exception:  # no psutil figures: no flag, never a failed cell
            log.debug("host activity not sampled", exc_info=True)

    def stop(self) -> ActivityWindow | None:
        if self._start is None:
            return None
        try:
            end = self._now()
        except Exception:
            return None
        return ActivityWindow(*(b - a for a, b in zip(self._start, end, strict=True)))


def host_busy(window: ActivityWindow | None, cell: CellConfig, device_kind: str) -> bool:
    """Other processes used more of the host than the cell left them: a cpu cell reserves
    its cores (all of the node by default); an accelerator cell needs one core to drive it."""
    if window is None:
        return False
    cores = os.cpu_count() or 1
    if device_kind == "cpu":
        reserved = cell.device.cpus_per_cell or cores
    else:
        reserved = 1
    return window.others_cores > max(0, cores - reserved) + BUSY_TOLERANCE_CORES
