"""Energy sources on captured-like sequences: NVML (the real pynvml over a stand-in library),
npu-smi (a stand-in executable on PATH), RAPL (fake powercap trees). Readings are replayed at
synthetic times, so nothing depends on timing."""

from __future__ import annotations

import csv
import stat
import subprocess
from pathlib import Path

import pytest

from tests.nvml_stub import FakeGpu, install_fake_nvml
from workers.device import nvml as nvml_lib
from workers.device.npu_smi import npu_chips, parse_chip_map
from workers.device.tools import Unavailable
from workers.energy import npu as en
from workers.energy import rapl
from workers.energy.integrate import Reason, Sample, integrate
from workers.energy.nvml import NvmlSource
from workers.energy.rapl import RaplSource

FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy"


# --- NVML ----------------------------------------------------------------------------------


@pytest.fixture
def fake_nvml(monkeypatch):
    return lambda gpus: install_fake_nvml(monkeypatch, gpus)


def rows(name: str) -> list[dict[str, str]]:
    with open(FIXTURES / name) as f:
        return list(csv.DictReader(f))


def replay(source: NvmlSource, gpu: FakeGpu, name: str) -> list[Sample]:
    """Each fixture row: set what the GPU answers, read through pynvml at the row's time."""
    out = []
    for row in rows(name):
        gpu.energy_mj = int(row["energy_mj"]) if row["energy_mj"] else None
        gpu.power_mw = int(row["power_mw"]) if row["power_mw"] else None
        gpu.reasons = int(row["clock_event_reasons"])
        out.append(Sample(float(row["t_s"]), tuple(source.read())))
    return out


def test_nvml_energy_counter_over_a_captured_sequence(fake_nvml, monkeypatch):
    gpu = FakeGpu("GPU-aaaa")
    lib = fake_nvml([FakeGpu("GPU-other"), gpu])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # the cell's GPU is NVML index 1
    source = NvmlSource(devices_per_cell=1)
    assert source.info.name == "nvml_energy" and source.info.kind == "counter"
    samples = replay(source, gpu, "nvml-h100-sxm-decode.csv")
    assert sum(s.values[0] is None for s in samples) == 3  # the failed reads are gaps
    got = integrate(source.info, samples, 0.05, 2.95)
    # counter: constant power between reads; the window edges cut the first and last interval
    good = [s for s in samples if s.values[0] is not None]
    (ta, ea), (tb, eb) = (good[0].t, good[0].values[0]), (good[1].t, good[1].values[0])
    (ty, ey), (tz, ez) = (good[-2].t, good[-2].values[0]), (good[-1].t, good[-1].values[0])
    expect = ez - ea - (eb - ea) / (tb - ta) * (0.05 - ta) - (ez - ey) / (tz - ty) * (tz - 2.95)
    assert got.energy_j == pytest.approx(expect)
    assert 430 < got.power_w_mean < 470  # the sequence models 441-468 W
    assert got.reasons == []  # a gap in a counter loses no energy
    source.close()
    assert lib.inits == 0 and "energy" in gpu.calls


def test_nvml_counter_reset_is_invalid(fake_nvml):
    gpu = FakeGpu("GPU-aaaa")
    fake_nvml([gpu])
    source = NvmlSource(devices_per_cell=1)
    got = integrate(source.info, replay(source, gpu, "nvml-h100-sxm-reset.csv"), 0.0, 2.0)
    assert got.reasons == [Reason.COUNTER_RESET.value]
    source.close()


def test_nvml_power_where_no_counter(fake_nvml):
    gpu = FakeGpu("GPU-pascal", has_counter=False)
    fake_nvml([gpu])
    source = NvmlSource(devices_per_cell=1)
    assert source.info.name == "nvml_power" and source.info.resolution_s == 1.0
    got = integrate(source.info, replay(source, gpu, "nvml-h100-sxm-decode.csv"), 0.05, 2.95)
    assert Reason.SAMPLE_GAP.value in got.reasons  # 0.4 s without power readings
    assert "energy" not in gpu.calls[1:]  # after the probe, power only
    source.close()


def test_nvml_events_and_uuid_mapping(fake_nvml, monkeypatch):
    gpus = [FakeGpu("GPU-a", reasons=0x1), FakeGpu("GPU-b", reasons=0x4 | 0x40)]
    fake_nvml(gpus)
    monkeypatch.setattr(nvml_lib, "_torch_uuids", lambda n: ["GPU-b"])  # torch's cuda:0 is GPU-b
    source = NvmlSource(devices_per_cell=1)
    assert source.events() == [0x44]
    source.close()
    monkeypatch.setattr(nvml_lib, "_torch_uuids", lambda n: ["GPU-missing"])
    with pytest.raises(Unavailable, match="Not Found"):
        NvmlSource(devices_per_cell=1)


def test_nvml_missing_library_or_module(monkeypatch):
    pynvml = pytest.importorskip("pynvml")
    monkeypatch.setattr(pynvml, "nvmlLib", None)  # libnvidia-ml.so.1 is not on this host
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    with pytest.raises(Unavailable, match="nvmlInit failed"):
        NvmlSource(devices_per_cell=1)
    monkeypatch.setattr(nvml_lib.importlib, "import_module", _no_module)
    with pytest.raises(Unavailable, match="nvidia-ml-py"):
        NvmlSource(devices_per_cell=1)


def _no_module(name: str) -> None:
    raise ImportError(name)


# --- npu-smi -------------------------------------------------------------------------------


@pytest.fixture
def npu_smi(tmp_path, monkeypatch):
    """A stand-in npu-smi on PATH: `info -m` prints a chip map, `info -t power` the next value
    of a sequence (FAIL: exit 255), `-t common` / `-t health` print fixtures; argv is logged."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    log, counter = tmp_path / "argv.log", tmp_path / "count"
    counter.write_text("0")
    real_run = subprocess.run

    def spy(argv, **kw):
        assert isinstance(argv, list) and not kw.get("shell"), "argv list, never a shell"
        assert kw.get("timeout") is not None
        return real_run(argv, **kw)

    monkeypatch.setattr(subprocess, "run", spy)

    def install(chip_map: str = "npu-smi-m-910b3-x8.txt", health: str = "ok", body: str = ""):
        script = bin_dir / "npu-smi"
        script.write_text(
            f"""#!/bin/sh
echo "$*" >> {log}
{body}
case "$*" in
  "info -m") /bin/cat {FIXTURES / chip_map} ;;
  "info -t power -i "*)
    n=$(/bin/cat {counter}); n=$((n+1)); echo $n > {counter}
    v=$(/bin/sed -n "${{n}}p" {FIXTURES / "npu-smi-power-seq.txt"})
    [ "$v" = FAIL ] && {{ echo "dcmi model initialized failed, because the device is used. ret is -8020" >&2; exit 255; }}
    printf '\\t%-30s : %s\\n' "NPU Real-time Power(W)" "$v" ;;
  "info -t common -i "*) /bin/cat {FIXTURES / "npu-smi-common-910b3.txt"} ;;
  "info -t health -i "*) /bin/cat {FIXTURES / f"npu-smi-health-{health}.txt"} ;;
  *) exit 2 ;;
esac
"""
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return log

    return install


def test_npu_smi_power_format_parses():
    assert en.parse_power((FIXTURES / "npu-smi-power-910b3.txt").read_text()) == 93.4
    assert en.parse_power("\tPower Dissipation(W)           : 301.2\n") == 301.2
    assert en.parse_power("\tNPU Real-time Power(W)         : NA\n") is None
    assert en.parse_power("Usage: npu-smi info ...") is None


def test_npu_chip_map_and_logical_ids(npu_smi, monkeypatch):
    assert parse_chip_map((FIXTURES / "npu-smi-m-a3-2x2.txt").read_text()) == {
        0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1)
    }  # fmt: skip
    npu_smi(chip_map="npu-smi-m-a3-2x2.txt")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "3,1")
    assert npu_chips(devices_per_cell=1) == [(1, 1)]  # logic id 3 is NPU 1, chip 1
    assert npu_chips(devices_per_cell=2) == [(1, 1), (0, 1)]


def test_npu_smi_power_sequence_with_failures(npu_smi, monkeypatch):
    log = npu_smi()
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "5")
    source = en.NpuSmiSource(devices_per_cell=1)  # first call of the sequence: the open probe
    assert source.info.name == "npu_smi_power" and source.info.devices == ("npu 5 chip 0",)
    values = [source.read()[0] for _ in range(11)]
    assert values[:3] == [301.2, 309.9, 312.4] and values[3:5] == [None, None]
    assert "info -t power -i 5 -c 0" in log.read_text()
    samples = [Sample(0.4 * i, (v,)) for i, v in enumerate(values)]  # one read per 0.4 s
    got = integrate(source.info, samples, 0.0, 4.0)
    assert Reason.SAMPLE_GAP.value not in got.reasons  # 1.2 s apart: under 3 periods of 0.4 s
    assert 290 < got.power_w_mean < 315
    late = [Sample(0.4 * i, (v,)) for i, v in enumerate(values) if i not in (2, 5, 6)]
    assert Reason.SAMPLE_GAP.value in integrate(source.info, late, 0.0, 4.0).reasons


def test_npu_smi_without_tool_or_reading(npu_smi, monkeypatch, tmp_path):
    npu_smi(body='[ "$1 $2 $3" = "info -t power" ] && { echo "NA"; exit 0; }')
    with pytest.raises(Unavailable, match="no reading for NPU 0 chip 0"):
        en.NpuSmiSource(devices_per_cell=1)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(Unavailable, match="not on PATH"):
        en.NpuSmiSource(devices_per_cell=1)


# --- RAPL ----------------------------------------------------------------------------------


def powercap(root: Path, zones: dict[str, tuple[str, int, int]], mode: int = 0o444) -> Path:
    """name -> (zone name, energy_uj, max_energy_range_uj), as /sys/class/powercap lists them."""
    for zone, (name, uj, max_uj) in zones.items():
        d = root / zone
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "energy_uj").chmod(mode)
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


MAX_UJ = 262143328850


def test_rapl_packages_and_dram_with_a_wrap(tmp_path):
    root = powercap(
        tmp_path / "powercap",
        {
            "intel-rapl:0": ("package-0", MAX_UJ - 40_000_000, MAX_UJ),
            "intel-rapl:0:0": ("core", 1, MAX_UJ),  # inside the package: not added again
            "intel-rapl:0:1": ("dram", 5_000_000, 65_712_999_613),
            "intel-rapl:1": ("package-1", 7_000_000, MAX_UJ),
            "intel-rapl:2": ("psys", 9, MAX_UJ),  # platform: overlaps the packages
        },
    )
    source = RaplSource(root)
    assert source.info.devices == (
        "intel-rapl:0 (package-0)", "intel-rapl:0:1 (dram)", "intel-rapl:1 (package-1)"
    )  # fmt: skip
    samples = [Sample(0.0, tuple(source.read()))]
    # 1 s later: package-0 wrapped after 100 J, dram +20 J, package-1 +80 J
    (root / "intel-rapl:0" / "energy_uj").chmod(0o644)
    (root / "intel-rapl:0" / "energy_uj").write_text(f"{60_000_000}\n")
    for zone, uj in (("intel-rapl:0:1", 25_000_000), ("intel-rapl:1", 87_000_000)):
        (root / zone / "energy_uj").chmod(0o644)
        (root / zone / "energy_uj").write_text(f"{uj}\n")
    samples.append(Sample(1.0, tuple(source.read())))
    got = integrate(source.info, samples, 0.0, 1.0)
    assert got.energy_j == pytest.approx(100 + 20 + 80) and got.wraps == 1
    assert got.reasons == []


def test_rapl_missing_or_unreadable(tmp_path, monkeypatch):
    with pytest.raises(Unavailable, match="no RAPL package zone"):
        RaplSource(tmp_path / "nothing")
    root = powercap(tmp_path / "pc", {"intel-rapl:0": ("package-0", 1, MAX_UJ)}, mode=0o000)
    monkeypatch.setattr(rapl.os, "access", lambda path, mode: False)  # as a non-root user sees it
    with pytest.raises(Unavailable, match="CVE-2020-8694"):
        RaplSource(root)


def test_torch_uuids_get_nvidia_prefix(monkeypatch):
    import torch

    class Props:
        def __init__(self, uuid: str) -> None:
            self.uuid = uuid

    uuids = ["5d4e2c1a-0000-4000-8000-000000000001", "GPU-5d4e2c1a-0000-4000-8000-000000000002"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props(uuids[i]))
    assert nvml_lib._torch_uuids(2) == [f"GPU-{uuids[0]}", uuids[1]]
    assert nvml_lib._torch_uuids(3) == []  # fewer GPUs than the cell holds: use the env ids
