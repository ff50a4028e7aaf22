"""NVML (pynvml, package nvidia-ml-py, extra `cuda`): imported only for a cuda cell, and the
handles of the GPUs a cell holds."""

from __future__ import annotations

import importlib
from typing import Any

from workers.device.tools import Unavailable
from workers.device.visible import visible


def import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise Unavailable(
            "pynvml is not installed: pip install -e '.[cuda]' (nvidia-ml-py)"
        ) from None


def nvml_handles(nvml: Any, devices_per_cell: int) -> tuple[list[Any], list[str]]:
    """NVML handles of the cell's GPUs: by UUID where torch knows them (exact whatever the
    enumeration order), else CUDA_VISIBLE_DEVICES ids as NVML indices (PCI bus order)."""
    uuids = _torch_uuids(devices_per_cell)
    if uuids:
        return [nvml.nvmlDeviceGetHandleByUUID(u.encode()) for u in uuids], uuids
    ids = visible("cuda", devices_per_cell)
    handles = []
    for v in ids:
        if v.isdigit():
            handles.append(nvml.nvmlDeviceGetHandleByIndex(int(v)))
        else:
            handles.append(nvml.nvmlDeviceGetHandleByUUID(v.encode()))
    return handles, [f"cuda {v}" for v in ids]


def _torch_uuids(devices_per_cell: int) -> list[str]:
    try:
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() < devices_per_cell:
            return []
        uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(devices_per_cell)]
    except Exception:  # no torch, no CUDA, an old torch without .uuid: use the env ids
        return []
    # torch prints the bare UUID; NVML wants NVIDIA's "GPU-" form
    return [u if u.startswith(("GPU-", "MIG-")) else f"GPU-{u}" for u in uuids]


def clock_event_reasons(nvml: Any, handle: Any) -> int:
    """The GPU's clock-event (throttle) reason bitmask, for the energy sampler and health.

    ``nvmlDeviceGetCurrentClocksEventReasons`` is the name since driver R535; pynvml looks a
    C symbol up only when the function is called, so on an older driver the call raises
    ``NVMLError_FunctionNotFound`` (the Python attribute always exists). Then the older name,
    ``nvmlDeviceGetCurrentClocksThrottleReasons`` (same bitmask), is asked instead. Other
    NVML errors propagate."""
    try:
        return int(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
    except (AttributeError, nvml.NVMLError_FunctionNotFound):
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))
