"""A stand-in for libnvidia-ml.so under the real pynvml (nvidia-ml-py).

pynvml calls ``nvmlLib.<C function>(args...)`` through ctypes and turns the return code into
its own exceptions; this object takes the library's place, so the real pynvml code runs
(argument marshalling, NVMLError_* classes) and only the driver is simulated. It rejects what
the driver rejects: calls before nvmlInit (UNINITIALIZED), unknown handles and indices
(INVALID_ARGUMENT), unknown UUIDs (NOT_FOUND), the energy counter on a GPU without one
(NOT_SUPPORTED, pre-Volta), and a scripted failed read (UNKNOWN).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import pytest

from workers.device import nvml as nvml_lib

SUCCESS, UNINITIALIZED, INVALID_ARGUMENT, NOT_SUPPORTED, NOT_FOUND = 0, 1, 2, 3, 6
UNKNOWN = 999
BASE = 0x7000


@dataclass
class FakeGpu:
    uuid: str
    energy_mj: int | None = 0  # None: the read fails
    power_mw: int | None = 300_000
    reasons: int = 0
    has_counter: bool = True
    temp_c: int = 45
    sm_mhz: int = 1980
    mem_mhz: int = 2619
    calls: list[str] = field(default_factory=list)


def _set(ref: object, value: int) -> None:
    ref._obj.value = value  # type: ignore[attr-defined]  # byref(c_uint) -> its object


class FakeNvmlLib:
    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.inits = 0

    # --- init ---
    def nvmlInitWithFlags(self, flags: int) -> int:
        self.inits += 1
        return SUCCESS

    def nvmlShutdown(self) -> int:
        if self.inits == 0:
            return UNINITIALIZED
        self.inits -= 1
        return SUCCESS

    # --- handles ---
    def _write_handle(self, ref: object, index: int) -> None:
        slot = ctypes.cast(ctypes.pointer(ref._obj), ctypes.POINTER(ctypes.c_void_p))  # type: ignore[attr-defined]
        slot.contents.value = BASE + index

    def nvmlDeviceGetHandleByIndex_v2(self, c_index: ctypes.c_uint, ref: object) -> int:
        if not self.inits:
            return UNINITIALIZED
        if c_index.value >= len(self.gpus):
            return INVALID_ARGUMENT
        self._write_handle(ref, c_index.value)
        return SUCCESS

    def nvmlDeviceGetHandleByUUID(self, c_uuid: ctypes.c_char_p, ref: object) -> int:
        if not self.inits:
            return UNINITIALIZED
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid.encode() == c_uuid.value:
                self._write_handle(ref, i)
                return SUCCESS
        return NOT_FOUND

    def _gpu(self, handle: object) -> FakeGpu | None:
        addr = ctypes.cast(handle, ctypes.c_void_p).value or 0
        i = addr - BASE
        return self.gpus[i] if self.inits and 0 <= i < len(self.gpus) else None

    # --- readings ---
    def _answer(self, handle: object, ref: object, value: int | None, name: str) -> int:
        if not self.inits:
            return UNINITIALIZED
        gpu = self._gpu(handle)
        if gpu is None:
            return INVALID_ARGUMENT
        gpu.calls.append(name)
        if value is None:
            return UNKNOWN
        _set(ref, value)
        return SUCCESS

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object, ref: object) -> int:
        gpu = self._gpu(handle)
        if gpu is not None and not gpu.has_counter:
            return NOT_SUPPORTED
        return self._answer(handle, ref, gpu.energy_mj if gpu else 0, "energy")

    def nvmlDeviceGetPowerUsage(self, handle: object, ref: object) -> int:
        gpu = self._gpu(handle)
        return self._answer(handle, ref, gpu.power_mw if gpu else 0, "power")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: object, ref: object) -> int:
        gpu = self._gpu(handle)  # the pre-R535 name; R535+ drivers still export it
        return self._answer(handle, ref, gpu.reasons if gpu else 0, "throttle_reasons")

    def nvmlDeviceGetTemperature(self, handle: object, sensor: object, ref: object) -> int:
        gpu = self._gpu(handle)
        return self._answer(handle, ref, gpu.temp_c if gpu else 0, "temp")

    def nvmlDeviceGetClockInfo(self, handle: object, clock: ctypes.c_uint, ref: object) -> int:
        gpu = self._gpu(handle)
        mhz = (gpu.sm_mhz if clock.value == 1 else gpu.mem_mhz) if gpu else 0
        return self._answer(handle, ref, mhz, "clock")


class FakeNvmlLibR535(FakeNvmlLib):
    """A driver from R535 on: it also exports the new name of the clock-event reasons."""

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: object, ref: object) -> int:
        gpu = self._gpu(handle)
        return self._answer(handle, ref, gpu.reasons if gpu else 0, "reasons")


def install_fake_nvml(
    monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu], pre_r535: bool = False
) -> FakeNvmlLib:
    """The real pynvml, talking to a stand-in library of these GPUs (CUDA_VISIBLE_DEVICES
    unset, torch's UUIDs not used): an R535+ driver, or with pre_r535 one without the symbol
    nvmlDeviceGetCurrentClocksEventReasons (pynvml then raises NVMLError_FunctionNotFound)."""
    pynvml = pytest.importorskip("pynvml")
    lib = FakeNvmlLib(gpus) if pre_r535 else FakeNvmlLibR535(gpus)
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    monkeypatch.setattr(pynvml, "_nvmlLib_refcount", 0)
    monkeypatch.setattr(nvml_lib, "_torch_uuids", lambda n: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return lib
