"""Where a cell's energy is read from: one protocol, one source per device kind.

``open_source(kind, devices_per_cell)`` returns a :class:`Source` for the devices the cell holds, or
raises :class:`~workers.device.tools.Unavailable` with a one-line reason why there is none
(the record carries it). Sources and their documented behaviour (docs/energy.md):

  nvml_energy / nvml_power  NVIDIA, workers/energy/nvml.py
  npu_smi_power             Ascend, `npu-smi info -t power -i NPU -c CHIP` (workers/energy/npu.py)
  rapl                      CPU package and DRAM counters (workers/energy/rapl.py)

A simulated cell has no source to sample: its energy comes from the simulator's power model
(workers/energy/simulated.py).
"""

from __future__ import annotations

from typing import Protocol

from workers.device.tools import Unavailable
from workers.energy.integrate import SourceInfo
from workers.energy.npu import NpuSmiSource
from workers.energy.nvml import NvmlSource
from workers.energy.rapl import RaplSource


class Source(Protocol):
    """A sampled energy or power source of a cell's devices."""

    info: SourceInfo

    def read(self) -> list[float | None]:
        """One value per device (None where that read failed; never raises for one device)."""
        ...

    def events(self) -> list[int | None] | None:
        """Per-device clock-event bitmasks now, or None where the source has none."""
        ...

    def close(self) -> None: ...


SOURCE_NAMES = {"cuda": "nvml", "npu": "npu_smi_power", "cpu": "rapl"}  # what open_source tries


def open_source(kind: str, devices_per_cell: int) -> Source:
    """The energy source of a cell's devices; raises Unavailable with the reason."""
    if kind == "cuda":
        return NvmlSource(devices_per_cell)
    if kind == "npu":
        return NpuSmiSource(devices_per_cell)
    if kind == "cpu":
        return RaplSource()
    raise Unavailable(f"no energy source for device kind {kind!r}")
