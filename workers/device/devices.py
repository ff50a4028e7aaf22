"""Device helpers: which device, how to synchronise it, how much memory it used.

torch_npu is imported only for ``device=npu`` (importing it elsewhere can break torch).
"""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from typing import Any

from workers.device.visible import VISIBLE_ENV


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used on this host."""


def npu_usable() -> tuple[bool, str]:
    if importlib.util.find_spec("torch_npu") is None:
        return False, "torch_npu is not installed (pip install '.[npu]' on a host with CANN)"
    try:
        import torch
        import torch_npu  # noqa: F401

        if not torch.npu.is_available():  # type: ignore[attr-defined]
            return False, "torch_npu is installed but torch.npu.is_available() is False"
    except Exception as exc:  # torch_npu raises many kinds of errors without CANN
        return False, f"torch_npu cannot be imported: {exc}"
    return True, ""


#: What a GPU driver that torch.cuda can use leaves on a Linux host: NVIDIA's device nodes and
#: its /proc entry, Jetson's GPU node, WSL2's GPU paravirtualisation, AMD's compute node (ROCm
#: builds of torch answer through torch.cuda).
GPU_DRIVER_NODES = (
    "/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/nvhost-ctrl-gpu",
    "/dev/dxg", "/dev/kfd",
)  # fmt: skip


def no_gpu_driver() -> str | None:
    """Why this host cannot have a CUDA device, when that is certain without importing torch
    (Linux with none of GPU_DRIVER_NODES); else None."""
    if platform.system() == "Linux" and not any(map(os.path.exists, GPU_DRIVER_NODES)):
        return f"no CUDA (or ROCm) GPU driver on this host (none of {', '.join(GPU_DRIVER_NODES)})"
    return None


def cuda_usable(quick: bool = False) -> tuple[bool, str]:
    """Whether torch sees a CUDA device. ``quick`` (what ``device=auto`` asks): a host without
    any GPU driver is answered without importing torch, which cost every ``device=auto``
    sweep's driver ~1.6 s of CPU on a CPU host; ``device=cuda`` always asks torch."""
    why = no_gpu_driver() if quick else None
    if why is not None:
        return False, why
    import torch

    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, ""


def resolve_device(name: str) -> str:
    """auto -> npu, then cuda, then cpu. Raises DeviceUnavailable for an unusable request."""
    if name == "auto":
        if importlib.util.find_spec("torch_npu") is not None and npu_usable()[0]:
            return "npu"
        if cuda_usable(quick=True)[0]:
            return "cuda"
        return "cpu"
    if name == "npu":
        ok, why = npu_usable()
        if not ok:
            raise DeviceUnavailable(f"device=npu is not usable here: {why}")
    elif name == "cuda":
        ok, why = cuda_usable()
        if not ok:
            raise DeviceUnavailable(f"device=cuda is not usable here: {why}")
    return name


@dataclass
class Device:
    """A resolved device: cpu, cuda or npu (index 0 of what this process may see)."""

    kind: str

    @property
    def torch_device(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:0"

    def _module(self) -> Any:
        import torch

        return getattr(torch, self.kind) if self.kind != "cpu" else None

    def synchronize(self) -> None:
        mod = self._module()
        if mod is not None:
            mod.synchronize()

    def reset_peak_memory(self) -> None:
        mod = self._module()
        if mod is not None:
            mod.reset_peak_memory_stats()
        _reset_peak_rss()

    def peak_memory(self) -> dict[str, int | None]:
        rss = _peak_rss()
        mod = self._module()
        if mod is None:
            return {"allocated": None, "reserved": None, "rss": rss}
        return {
            "allocated": int(mod.max_memory_allocated()),
            "reserved": int(mod.max_memory_reserved()),
            "rss": rss,
        }

    def name(self) -> str:
        mod = self._module()
        if mod is None:
            return cpu_model_name()
        try:
            return str(mod.get_device_name(0))
        except Exception:
            return self.kind

    def visible_devices(self) -> str | None:
        env = VISIBLE_ENV.get(self.kind)
        return os.environ.get(env) if env else None

    def available_memory(self) -> int | None:
        """Bytes free for this cell: the device's free memory, or the host's available
        memory for cpu; None when unknown."""
        try:
            mod = self._module()
            if mod is None:
                import psutil

                return int(psutil.virtual_memory().available)
            return int(mod.mem_get_info()[0])
        except Exception:
            return None

    def empty_cache(self) -> None:
        mod = self._module()
        if mod is not None:
            mod.empty_cache()

    def is_oom(self, exc: BaseException) -> bool:
        """Device or host memory exhausted: torch's OOM, an allocator that could not
        allocate (the CPU's DefaultCPUAllocator says "can't allocate memory"), MemoryError."""
        import torch

        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            return True
        text = str(exc).lower()
        if self.kind == "cpu":
            return "can't allocate memory" in text or "defaultcpuallocator" in text
        return "out of memory" in text


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    """Peak resident set size since the last reset (VmHWM), else the current RSS."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process().memory_info().rss)


def open_device(name: str) -> Device:
    kind = resolve_device(name)
    if kind == "npu":
        import torch_npu  # noqa: F401  registers torch.npu
    return Device(kind)
