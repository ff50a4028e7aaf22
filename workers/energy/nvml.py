"""NVIDIA energy through NVML: nvmlDeviceGetTotalEnergyConsumption (mJ since the driver
loaded, Volta and newer, a 64-bit counter updated about every 100 ms), else
nvmlDeviceGetPowerUsage (mW; on Ampere and newer but GA100 a 1 s average, so 1 s is taken as
its resolution)."""

from __future__ import annotations

import logging
from typing import Any

from workers.device.nvml import clock_event_reasons, import_pynvml, nvml_handles
from workers.device.tools import Unavailable
from workers.energy.integrate import SourceInfo

log = logging.getLogger(__name__)


class NvmlSource:
    """The GPUs' energy counters, or their power where a GPU has no counter (pre-Volta)."""

    def __init__(self, devices_per_cell: int, nvml: Any = None) -> None:
        self.nvml = nvml or import_pynvml()
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise Unavailable(f"nvmlInit failed: {exc}") from None
        try:
            self.handles, labels = nvml_handles(self.nvml, devices_per_cell)
            self.counter = all(self._supported(h) for h in self.handles)
            if not self.counter:
                for h in self.handles:
                    self.nvml.nvmlDeviceGetPowerUsage(h)  # raises where power is not readable
        except self.nvml.NVMLError as exc:
            self.close()
            raise Unavailable(f"NVML cannot read energy or power: {exc}") from None
        if self.counter:
            self.info = SourceInfo("nvml_energy", "counter", 0.1, 0.1, tuple(labels))
        else:
            self.info = SourceInfo(
                "nvml_power", "power", 0.1, 1.0, tuple(labels), note="no energy counter"
            )

    def _supported(self, handle: Any) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return True
        except self.nvml.NVMLError_NotSupported:
            return False

    def read(self) -> list[float | None]:
        read = (
            self.nvml.nvmlDeviceGetTotalEnergyConsumption
            if self.counter
            else self.nvml.nvmlDeviceGetPowerUsage
        )
        out: list[float | None] = []
        for h in self.handles:
            try:
                out.append(read(h) / 1000.0)  # mJ -> J, mW -> W
            except self.nvml.NVMLError:
                out.append(None)
        return out

    def events(self) -> list[int | None]:
        """Clock-event (throttle) reason bitmasks now, one per GPU."""
        out: list[int | None] = []
        for h in self.handles:
            try:
                out.append(clock_event_reasons(self.nvml, h))
            except self.nvml.NVMLError:
                out.append(None)
        return out

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed", exc_info=True)
