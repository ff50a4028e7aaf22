"""Which device ``auto`` means, and what it costs to ask: on a Linux host without any GPU
driver's device node the CUDA question is answered without importing torch (the driver of a
``device=auto`` sweep paid ~1.6 s of CPU and ~200 MB for that import)."""

from __future__ import annotations

import sys

import pytest

from workers.device import devices


@pytest.fixture
def no_torch(monkeypatch):
    """``import torch`` fails for the duration of the test."""
    monkeypatch.setitem(sys.modules, "torch", None)


def test_no_driver_node_means_no_cuda_without_importing_torch(monkeypatch, tmp_path, no_torch):
    monkeypatch.setattr(devices.platform, "system", lambda: "Linux")
    monkeypatch.setattr(devices, "GPU_DRIVER_NODES", (str(tmp_path / "nvidiactl"),))
    ok, why = devices.cuda_usable()
    assert not ok and "no CUDA" in why and str(tmp_path / "nvidiactl") in why
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: None)  # no torch_npu
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(devices.DeviceUnavailable, match="device=cuda is not usable here: no CUDA"):
        devices.resolve_device("cuda")


def test_a_driver_node_defers_to_torch(monkeypatch, tmp_path, no_torch):
    node = tmp_path / "nvidiactl"
    node.touch()
    monkeypatch.setattr(devices.platform, "system", lambda: "Linux")
    monkeypatch.setattr(devices, "GPU_DRIVER_NODES", (str(node),))
    with pytest.raises(ImportError):  # torch is asked (and here cannot be imported)
        devices.cuda_usable()


def test_other_systems_ask_torch(monkeypatch, tmp_path, no_torch):
    monkeypatch.setattr(devices.platform, "system", lambda: "Windows")
    monkeypatch.setattr(devices, "GPU_DRIVER_NODES", (str(tmp_path / "nvidiactl"),))
    with pytest.raises(ImportError):
        devices.cuda_usable()


def test_on_this_host_torch_agrees():
    """Where torch can be imported, the shortcut never says no where torch says yes."""
    import torch

    ok, _ = devices.cuda_usable()
    assert ok == torch.cuda.is_available()
