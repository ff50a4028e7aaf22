"""Device health around a cell: memory left behind (dirty_start, and the sweep replaces the
worker), throttling from NVML clock-event reasons (the real pynvml over a stand-in library)
and from npu-smi health, and nothing to watch on the simulator or a cpu."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

from jobs.record import Flag, Outcome, Status
from tests.nvml_stub import FakeGpu, install_fake_nvml
from workers.device import health, npu_smi

MIB = 2**20
GIB = 2**30
FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy"


@pytest.fixture
def device_memory(monkeypatch):
    """A device whose bytes in use the test sets (the probe a worker reads), fresh worker."""
    state = {"in_use": 0, "total": 64 * GIB}
    monkeypatch.setattr(health, "_WORKER", {})
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: (state["in_use"], state["total"]))
    return state


def test_memory_of_a_worker_across_cells(device_memory):
    mem = device_memory
    mem["in_use"] = 3 * GIB  # a fresh chip: firmware and runtime context
    health.loading_started("npu")  # the first cell loads its model
    mem["in_use"] += 16 * GIB
    health.loading_finished("npu")
    first = health.memory_check("npu")
    assert first["dirty"] == [] and first["model_bytes"] == 16 * GIB
    assert first["baseline_bytes"] == 3 * GIB and first["leftover_bytes"] == 0
    mem["in_use"] += 100 * MIB  # within tolerance (max(256 MiB, 2 % of 64 GiB))
    assert health.memory_check("npu")["dirty"] == []
    mem["in_use"] += 4 * GIB  # the previous cell left a KV cache alive
    check = health.memory_check("npu")
    assert check["dirty"] and check["leftover_bytes"] > 4 * GIB


def test_memory_left_by_a_dropped_model_is_found_when_loading_the_next(device_memory):
    mem = device_memory
    mem["in_use"] = 3 * GIB
    health.loading_started("cuda")
    mem["in_use"] += 16 * GIB
    health.loading_finished("cuda")
    assert health.memory_check("cuda")["dirty"] == []
    mem["in_use"] -= 10 * GIB  # model A dropped, but 6 GiB of it never freed
    health.loading_started("cuda")
    mem["in_use"] += 12 * GIB  # model B
    health.loading_finished("cuda")
    check = health.memory_check("cuda")
    assert check["model_bytes"] == 12 * GIB  # B's own footprint, not B + A's leftover
    assert len(check["dirty"]) == 2  # seen while loading, and still there before the cell
    assert health.memory_check("cuda")["dirty"] == check["dirty"][1:]  # reported once


def test_no_probe_no_check(monkeypatch):
    monkeypatch.setattr(health, "_WORKER", {})
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: None)
    health.loading_started("npu")
    health.loading_finished("npu")
    assert health.memory_check("npu") == {"checked": False}
    assert health.memory_in_use("cpu") is None  # torch has no device memory for a cpu


def test_dirty_start_flags_the_cell_and_replaces_the_worker(device_memory, monkeypatch, tmp_path):
    monkeypatch.setitem(
        health.TELEMETRY, "npu", lambda devices_per_cell: [{"device": "npu 0 chip 0"}]
    )
    device_memory["in_use"] = 20 * GIB
    health.memory_check("npu")  # the worker's baseline
    device_memory["in_use"] = 25 * GIB
    watch = health.CellHealth("npu", 1, simulated=False)
    watch.before()
    fields, flags, block = watch.after([])
    assert flags == [Flag.DIRTY_START] and fields["memory_leftover_bytes"] == 5 * GIB
    assert block["memory"]["dirty"]
    assert _replaced(Outcome(status=Status.OK, flags=flags), tmp_path) is True
    assert _replaced(Outcome(status=Status.OK, flags=[Flag.SIMULATED]), tmp_path) is False
    assert _replaced(Outcome(status=Status.FAILED), tmp_path) is True


def _replaced(outcome: Outcome, tmp: Path) -> bool:
    """What CellSweepApp.on_result answers to "replace this worker?" for an outcome."""
    from hydra_plugins.ray_cells_launcher.app import Job
    from jobs.config import CellConfig
    from jobs.identity import PlannedCell
    from sweep.app import CellSweepApp
    from sweep.finish import SweepResults

    app = CellSweepApp(plots=False)
    job = Job(idx=0, overrides=[], output_dir=str(tmp / "cell"))
    job.payload = PlannedCell.of(CellConfig())
    app.results = SweepResults(tmp)
    ret = JobReturn()
    ret.return_value, ret.status = outcome, JobStatus.COMPLETED
    return app.on_result(job, ret, {})


def test_nvml_throttle_reasons_during_the_window(monkeypatch):
    gpu = FakeGpu("GPU-a", reasons=0x1, temp_c=61)  # idle right after the window: not throttling
    install_fake_nvml(monkeypatch, [gpu])
    watch = health.CellHealth("cuda", 1, simulated=False)
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: None)
    watch.before()
    assert watch.start[0]["temp_c"] == 61 and watch.start[0]["sm_clock_mhz"] == 1980
    fields, flags, block = watch.after([0x4])  # the sampler saw SW power capping in the window
    assert flags == [Flag.THROTTLED] and fields["throttle_reasons"] == ["sw_power_cap"]
    assert block["window_clock_event_reasons"] == [["sw_power_cap"]]
    fields, flags, _ = watch.after([0x1 | 0x10])  # idle and sync boost are not throttling
    assert flags == [] and fields["throttle_reasons"] == []
    gpu.reasons = 0x40  # HW thermal slowdown still on right after the window
    assert watch.after([])[1] == [Flag.THROTTLED]


def test_nvml_missing_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(health.nvml_lib, "import_pynvml", _raise)
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: None)
    watch = health.CellHealth("cuda", 1, simulated=False)
    watch.before()
    fields, flags, block = watch.after([])
    assert flags == [] and "nvidia-ml-py" in block["before"]["error"]


def _raise() -> None:
    raise health.Unavailable("pynvml is not installed: pip install -e '.[cuda]' (nvidia-ml-py)")


@pytest.mark.parametrize("status, flagged", [("ok", False), ("warning", True)])
def test_npu_health_and_temperature(tmp_path, monkeypatch, status, flagged):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npu-smi"
    script.write_text(
        f"""#!/bin/sh
case "$*" in
  "info -m") /bin/cat {FIXTURES / "npu-smi-m-910b3-x8.txt"} ;;
  "info -t common -i 6 -c 0") /bin/cat {FIXTURES / "npu-smi-common-910b3.txt"} ;;
  "info -t health -i 6 -c 0") /bin/cat {FIXTURES / f"npu-smi-health-{status}.txt"} ;;
  *) exit 2 ;;
esac
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "6")
    monkeypatch.setitem(health.PROBE, "memory", lambda kind: None)
    assert npu_smi.npu_chips(1) == [(6, 0)]
    watch = health.CellHealth("npu", 1, simulated=False)
    watch.before()
    row = watch.start[0]
    assert row["temp_c"] == 52 and row["aicore_freq_mhz"] == 1800 and row["power_w"] == 312.4
    fields, flags, block = watch.after([])
    assert fields["temp_c_start"] == 52 == fields["temp_c_end"]
    assert (flags == [Flag.THROTTLED]) is flagged
    if flagged:
        assert "health Warning" in fields["throttle_reasons"][0]
        assert "80E18005" in fields["throttle_reasons"][0]


@pytest.mark.parametrize("kind, simulated", [("npu", True), ("cpu", False)])
def test_nothing_to_watch(kind, simulated, monkeypatch):
    monkeypatch.setitem(health.PROBE, "memory", _fail)
    watch = health.CellHealth(kind, 1, simulated=simulated)
    watch.before()
    fields, flags, block = watch.after([0x4])
    assert block is None and flags == [] and set(fields.values()) == {None}
    with health.loading(kind, simulated):
        pass


def _fail(kind: str) -> None:
    raise AssertionError("no memory probe for a simulated or cpu cell")
