"""The clock-event reasons on a driver before R535: the real pynvml over a stand-in library
that lacks ``nvmlDeviceGetCurrentClocksEventReasons``. pynvml looks the C symbol up when the
function is called and raises NVMLError_FunctionNotFound; both the energy sampler and the
health probe then ask ``nvmlDeviceGetCurrentClocksThrottleReasons`` (one helper)."""

from __future__ import annotations

import pytest

from tests.nvml_stub import FakeGpu, install_fake_nvml
from workers.device import health
from workers.device import nvml as es
from workers.energy.nvml import NvmlSource


@pytest.mark.parametrize("pre_r535, asked", [(True, "throttle_reasons"), (False, "reasons")])
def test_reasons_helper_falls_back_on_function_not_found(monkeypatch, pre_r535, asked):
    gpu = FakeGpu("GPU-a", reasons=0x4 | 0x40)
    install_fake_nvml(monkeypatch, [gpu], pre_r535=pre_r535)
    nvml = es.import_pynvml()
    nvml.nvmlInit()
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        if pre_r535:  # the premise: the new name is missing from this driver
            with pytest.raises(nvml.NVMLError_FunctionNotFound):
                nvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
        assert es.clock_event_reasons(nvml, handle) == 0x44
    finally:
        nvml.nvmlShutdown()
    assert gpu.calls[-1] == asked


def test_sampler_events_on_a_pre_r535_driver(monkeypatch):
    gpus = [FakeGpu("GPU-a", reasons=0x1), FakeGpu("GPU-b", reasons=0x4)]
    install_fake_nvml(monkeypatch, gpus, pre_r535=True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    source = NvmlSource(devices_per_cell=2)
    assert source.events() == [0x1, 0x4]  # not [None, None]
    source.close()


def test_health_throttle_on_a_pre_r535_driver(monkeypatch):
    gpu = FakeGpu("GPU-a", reasons=0x40)  # HW thermal slowdown right after the window
    install_fake_nvml(monkeypatch, [gpu], pre_r535=True)
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: None)
    watch = health.CellHealth("cuda", 1, simulated=False)
    watch.before()
    assert watch.start[0]["clock_event_reasons"] == 0x40
    assert "errors" not in watch.start[0]
    fields, flags, _ = watch.after([])
    assert flags == [health.Flag.THROTTLED] and fields["throttle_reasons"]


def test_other_nvml_errors_are_not_swallowed(monkeypatch):
    gpu = FakeGpu("GPU-a")
    install_fake_nvml(monkeypatch, [gpu], pre_r535=True)
    nvml = es.import_pynvml()  # not initialised: UNINITIALIZED, not FunctionNotFound
    with pytest.raises(nvml.NVMLError_Uninitialized):
        es.clock_event_reasons(nvml, None)
