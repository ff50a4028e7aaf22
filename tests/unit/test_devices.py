"""Which device ``auto`` means, and what it costs to ask: on a Linux host without any GPU
driver ``device=auto`` is answered without importing torch (the driver of a ``device=auto``
sweep paid ~1.6 s of CPU and ~200 MB for that import); ``device=cuda`` always asks torch."""

from __future__ import annotations

import sys

import pytest

from workers.device import devices


@pytest.fixture
def no_torch(monkeypatch):
    """``import torch`` fails for the duration of the test."""
    monkeypatch.setitem(sys.modules, "torch", None)


@pytest.fixture
def linux_without(monkeypatch, tmp_path):
    """A Linux host whose only GPU driver node would be ``tmp_path/nvidiactl``."""
    node = tmp_path / "nvidiactl"
    monkeypatch.setattr(devices.platform, "system", lambda: "Linux")
    monkeypatch.setattr(devices, "GPU_DRIVER_NODES", (str(node),))
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: None)  # no torch_npu
    return node


def test_auto_without_a_driver_is_cpu_without_importing_torch(linux_without, no_torch):
    ok, why = devices.cuda_usable(quick=True)
    assert not ok and "no CUDA" in why and str(linux_without) in why
    assert devices.resolve_device("auto") == "cpu"


def test_cuda_asked_for_always_asks_torch(linux_without, no_torch):
    with pytest.raises(ImportError):  # torch is asked (and here cannot be imported)
        devices.resolve_device("cuda")


def test_a_driver_node_defers_to_torch(linux_without, no_torch):
    linux_without.touch()
    with pytest.raises(ImportError):
        devices.resolve_device("auto")


def test_other_systems_ask_torch(linux_without, monkeypatch, no_torch):
    monkeypatch.setattr(devices.platform, "system", lambda: "Windows")
    with pytest.raises(ImportError):
        devices.resolve_device("auto")


def test_on_this_host_both_answers_agree_with_torch():
    """The quick answer never says no where torch says yes."""
    import torch

    assert devices.cuda_usable(quick=True)[0] == devices.cuda_usable()[0]
    assert devices.cuda_usable()[0] == torch.cuda.is_available()
