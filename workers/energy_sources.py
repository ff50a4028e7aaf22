"""Where a cell's energy is read from: NVML (NVIDIA), npu-smi (Ascend), RAPL powercap (CPU).

``open_source(kind, per_cell)`` returns a source for the devices the cell holds, or a
one-line reason why there is none (the record carries it). Every source has ``info``
(a :class:`~workers.energy_integrate.SourceInfo`), ``read()`` -> one value per device (None
where that read failed; never raises for one device), ``events()`` -> per-device clock-event
bitmasks or None, and ``close()``. Sources and their documented behaviour (docs/energy.md):

  nvml_energy   nvmlDeviceGetTotalEnergyConsumption: mJ since the driver loaded (Volta and
                newer), a 64-bit counter updated about every 100 ms
  nvml_power    nvmlDeviceGetPowerUsage (mW) where the counter is not supported; on Ampere
                and newer (but GA100) it is a 1 s average, so 1 s is taken as its resolution
  npu_smi_power `npu-smi info -t power -i NPU -c CHIP` (workers/energy_npu.py)
  rapl          /sys/class/powercap/intel-rapl:N (package) and their `dram` sub-zones:
                energy_uj, wrapping at max_energy_range_uj (AMD Zen exposes the same files)
pynvml (package nvidia-ml-py, extra `cuda`) is imported only for a cuda cell.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from workers.energy_integrate import SourceInfo

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")
VISIBLE_ENV = {"npu": "ASCEND_RT_VISIBLE_DEVICES", "cuda": "CUDA_VISIBLE_DEVICES"}
_ZONE = re.compile(r"^intel-rapl:\d+(:\d+)?$")


class Unavailable(RuntimeError):
    """No source for these devices; the message says why (it goes into the record)."""


def visible(kind: str, per_cell: int) -> list[str]:
    """The first per_cell entries of *_VISIBLE_DEVICES (the devices the cell uses), or the
    indices 0..per_cell-1 when the variable is unset."""
    items = [v.strip() for v in os.environ.get(VISIBLE_ENV[kind], "").split(",") if v.strip()]
    return items[:per_cell] if items else [str(i) for i in range(per_cell)]


# --- RAPL -------------------------------------------------------------------------------


class RaplSource:
    """CPU package (and DRAM) energy counters of the powercap framework."""

    def __init__(self, root: Path = POWERCAP) -> None:
        zones = []
        for path in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
            name = _read_text(path / "name")
            top = path.name.count(":") == 1
            if _ZONE.match(path.name) and (top and name.startswith("package") or name == "dram"):
                zones.append((path, name))
        if not zones:
            raise Unavailable(f"no RAPL package zone under {root} (no powercap on this host)")
        self.files = [p / "energy_uj" for p, _ in zones]
        for f in self.files:
            if not os.access(f, os.R_OK):
                raise Unavailable(
                    f"{f} is not readable by this user (root only on kernels patched for "
                    "CVE-2020-8694); a root can grant read access to the measuring user"
                )
        wraps = tuple(
            int(_read_text(p / "max_energy_range_uj") or 0) / 1e6 or None for p, _ in zones
        )
        labels = tuple(f"{p.name} ({n})" for p, n in zones)
        self.info = SourceInfo("rapl", "counter", 0.1, 0.001, labels, wraps)

    def read(self) -> list[float | None]:
        out: list[float | None] = []
        for f in self.files:
            try:
                out.append(int(f.read_text().strip()) / 1e6)
            except (OSError, ValueError):
                out.append(None)
        return out

    def events(self) -> None:
        return None

    def close(self) -> None:
        pass


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


# --- NVML -------------------------------------------------------------------------------


def import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise Unavailable(
            "pynvml is not installed: pip install -e '.[cuda]' (nvidia-ml-py)"
        ) from None


def nvml_handles(nvml: Any, per_cell: int) -> tuple[list[Any], list[str]]:
    """NVML handles of the cell's GPUs: by UUID where torch knows them (exact whatever the
    enumeration order), else CUDA_VISIBLE_DEVICES ids as NVML indices (PCI bus order)."""
    uuids = _torch_uuids(per_cell)
    if uuids:
        return [nvml.nvmlDeviceGetHandleByUUID(u.encode()) for u in uuids], uuids
    ids = visible("cuda", per_cell)
    handles = []
    for v in ids:
        if v.isdigit():
            handles.append(nvml.nvmlDeviceGetHandleByIndex(int(v)))
        else:
            handles.append(nvml.nvmlDeviceGetHandleByUUID(v.encode()))
    return handles, [f"cuda {v}" for v in ids]


def _torch_uuids(per_cell: int) -> list[str]:
    try:
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() < per_cell:
            return []
        uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(per_cell)]
    except Exception:  # no torch, no CUDA, an old torch without .uuid: use the env ids
        return []
    # torch prints the bare UUID; NVML wants NVIDIA's "GPU-" form
    return [u if u.startswith(("GPU-", "MIG-")) else f"GPU-{u}" for u in uuids]


class NvmlSource:
    """The GPUs' energy counters, or their power where a GPU has no counter (pre-Volta)."""

    def __init__(self, per_cell: int, nvml: Any = None) -> None:
        self.nvml = nvml or import_pynvml()
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise Unavailable(f"nvmlInit failed: {exc}") from None
        try:
            self.handles, labels = nvml_handles(self.nvml, per_cell)
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


def clock_event_reasons(nvml: Any, handle: Any) -> int:
    """The GPU's clock-event (throttle) reason bitmask.

    ``nvmlDeviceGetCurrentClocksEventReasons`` is the name since driver R535; pynvml looks a
    C symbol up only when the function is called, so on an older driver the call raises
    ``NVMLError_FunctionNotFound`` (the Python attribute always exists). Then the older name,
    ``nvmlDeviceGetCurrentClocksThrottleReasons`` (same bitmask), is asked instead. Other
    NVML errors propagate."""
    try:
        return int(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
    except (AttributeError, nvml.NVMLError_FunctionNotFound):
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))


SOURCE_NAMES = {"cuda": "nvml", "npu": "npu_smi_power", "cpu": "rapl"}  # what open_source tries


def open_source(kind: str, per_cell: int) -> Any:
    """The energy source of a cell's devices; raises Unavailable with the reason."""
    if kind == "cuda":
        return NvmlSource(per_cell)
    if kind == "npu":
        from workers.energy_npu import NpuSmiSource

        return NpuSmiSource(per_cell)
    if kind == "cpu":
        return RaplSource()
    raise Unavailable(f"no energy source for device kind {kind!r}")
