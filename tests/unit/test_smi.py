"""Device snapshots: parsing npu-smi / nvidia-smi outputs, visible-device filtering, and
running the tools (stand-in executables on PATH that print the fixtures)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from workers.device import smi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "smi"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_npu_smi_910b_one_chip_per_npu():
    chips = smi.parse_npu_smi(fixture("npu-smi-910b3-x8.txt"))
    assert [c["npu"] for c in chips] == list(range(8))  # the process table is not read
    first = chips[0]
    assert first == {
        "npu": 0,
        "name": "910B3",
        "health": "OK",
        "power_w": 312.4,
        "temp_c": 52.0,
        "chip": 0,
        "phy_id": None,
        "bus_id": "0000:C1:00.0",
        "aicore_pct": 87.0,
        "memory_used_mb": 0,
        "memory_total_mb": 0,
        "hbm_used_mb": 48213,
        "hbm_total_mb": 65536,
    }
    assert chips[7]["bus_id"] == "0000:42:00.0" and chips[7]["hbm_used_mb"] == 3380


def test_npu_smi_a3_two_chips_per_npu():
    chips = smi.parse_npu_smi(fixture("npu-smi-a3-2x2.txt"))
    assert [(c["npu"], c["chip"], c["phy_id"]) for c in chips] == [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (1, 1, 3),
    ]
    assert [c["power_w"] for c in chips] == [166.5, None, 168.1, None]  # "-": no own reading
    assert chips[3]["hbm_used_mb"] == 2890 and chips[3]["name"] == "Ascend910"


def test_npu_smi_five_digit_usage():
    chips = smi.parse_npu_smi(fixture("npu-smi-910b4-x2.txt"))
    assert [(c["hbm_used_mb"], c["hbm_total_mb"]) for c in chips] == [
        (26838, 32768),
        (29356, 32768),
    ]


def test_nvidia_smi_csv():
    gpus = smi.parse_nvidia_smi(fixture("nvidia-smi-h100-x4.csv"))
    assert len(gpus) == 4
    assert gpus[0] == {
        "index": 0,
        "device_id": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_used_mb": 64213,
        "memory_total_mb": 81559,
        "power_w": 512.37,
        "temp_c": 58.0,
        "utilization_pct": 97.0,
    }
    assert gpus[3]["power_w"] is None  # [N/A]


def test_garbage_parses_to_nothing():
    assert smi.parse_npu_smi("npu-smi: command failed\n| x | y |\n") == []
    assert smi.parse_nvidia_smi("No devices were found\n") == []


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """A PATH holding only stand-in npu-smi / nvidia-smi scripts that print the fixtures."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for var in smi.VISIBLE_ENV.values():
        monkeypatch.delenv(var, raising=False)
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, **kw):
        assert isinstance(argv, list) and not kw.get("shell"), "argv list, never a shell"
        assert kw.get("timeout") == smi.TIMEOUT_S
        calls.append(argv)
        return real_run(argv, **kw)

    monkeypatch.setattr(subprocess, "run", spy)

    def install(name: str, body: str) -> None:
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    install.npu = lambda table, mapping=None: install(  # type: ignore[attr-defined]
        "npu-smi",
        '[ "$1" = info ] || exit 2\n'
        + (f'[ "$2" = -m ] && exec /bin/cat "{FIXTURES / mapping}"\n' if mapping else "")
        + '[ "$2" = -m ] && exit 2\n'
        + f'exec /bin/cat "{FIXTURES / table}"\n',
    )
    install.npu("npu-smi-a3-2x2.txt", "npu-smi-m-a3-2x2.txt")
    install(
        "nvidia-smi",
        f'[ "$2" = --format=csv,noheader,nounits ] || exit 2\n'
        f'/bin/cat "{FIXTURES / "nvidia-smi-h100-x4.csv"}"\n',
    )
    install.calls = calls  # type: ignore[attr-defined]
    return install


def test_snapshot_runs_the_tools(tools):
    npu = smi.snapshot("npu")
    assert npu["tool"] == "npu-smi" and npu["filtered"] is False and npu["visible"] is None
    assert len(npu["devices"]) == 4 and npu["id_source"] == "npu-smi info -m"
    assert [c["device_id"] for c in npu["devices"]] == [0, 1, 2, 3]
    cuda = smi.snapshot("cuda")
    assert [g["index"] for g in cuda["devices"]] == [0, 1, 2, 3]
    assert tools.calls == [smi.COMMANDS["npu"], smi.NPU_MAP_COMMAND, smi.COMMANDS["cuda"]]
    assert smi.snapshot("cpu") is None


def test_snapshot_keeps_visible_devices(tools, monkeypatch):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1,3")
    npu = smi.snapshot("npu")
    assert npu["filtered"] is True and npu["visible"] == "1,3"
    assert [(c["npu"], c["chip"]) for c in npu["devices"]] == [(0, 1), (1, 1)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert [g["index"] for g in smi.snapshot("cuda")["devices"]] == [2]
    # UUIDs cannot be matched to nvidia-smi's index: keep every GPU and say so
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5d4e2c1a-0000-0000-0000-000000000000")
    cuda = smi.snapshot("cuda")
    assert cuda["filtered"] is False and len(cuda["devices"]) == 4


def test_missing_tool_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert smi.snapshot("npu") == {"tool": "npu-smi", "error": "npu-smi not found on PATH"}
    assert smi.snapshot("cuda")["error"] == "nvidia-smi not found on PATH"


def test_failing_or_hanging_tool_gives_error(tools, monkeypatch):
    tools("npu-smi", "echo 'dcmi model initialized failed' >&2\nexit 255\n")
    npu = smi.snapshot("npu")
    assert npu["tool"] == "npu-smi" and npu["error"].startswith("exit 255")
    assert "dcmi" in npu["error"]
    tools("nvidia-smi", "exec /bin/sleep 5\n")
    monkeypatch.setattr(smi, "TIMEOUT_S", 0.2)
    cuda = smi.snapshot("cuda")
    assert cuda["error"].startswith("TimeoutExpired")
    assert "devices" not in cuda


def test_npu_smi_map():
    assert smi.parse_npu_map(fixture("npu-smi-m-910b3-x8.txt")) == {(n, 0): n for n in range(8)}
    assert smi.parse_npu_map(fixture("npu-smi-m-a3-2x2.txt")) == {
        (0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3,
    }  # fmt: skip
    container = smi.parse_npu_map(fixture("npu-smi-m-910b3-cards4-7.txt"))
    assert container == {(4, 0): 0, (5, 0): 1, (6, 0): 2, (7, 0): 3}
    assert smi.parse_npu_map("dcmi model initialized failed") == {}


def test_container_cards_4_to_7_are_logical_0_to_3(tools, monkeypatch):
    """A container given cards 4-7: npu-smi lists NPU 4-7, the runtime counts them 0-3."""
    tools.npu("npu-smi-910b3-cards4-7.txt", "npu-smi-m-910b3-cards4-7.txt")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1")
    npu = smi.snapshot("npu")
    assert [(c["npu"], c["device_id"]) for c in npu["devices"]] == [(5, 1)]
    assert npu["devices"][0]["bus_id"] == "0000:02:00.0" and "empty_reason" not in npu
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "3,0")  # in the variable's order
    assert [c["npu"] for c in smi.snapshot("npu")["devices"]] == [7, 4]


def test_without_the_map_the_table_order_counts(tools, monkeypatch):
    tools.npu("npu-smi-910b3-cards4-7.txt")  # `npu-smi info -m` fails
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "2")
    npu = smi.snapshot("npu")
    assert npu["id_source"] == "table order"
    assert [c["npu"] for c in npu["devices"]] == [6]


def test_an_empty_snapshot_says_why(tools, monkeypatch):
    tools.npu("npu-smi-910b3-cards4-7.txt", "npu-smi-m-910b3-cards4-7.txt")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "6")  # a host id, not a logical one
    npu = smi.snapshot("npu")
    assert npu["devices"] == []
    assert npu["empty_reason"] == (
        "no device has a logical id in ASCEND_RT_VISIBLE_DEVICES=6 (ids seen: 0,1,2,3)"
    )
    tools("npu-smi", "echo 'Unexpected output of a new npu-smi'\n")
    npu = smi.snapshot("npu")
    assert npu["devices"] == [] and "printed no device rows" in npu["empty_reason"]
    assert "Unexpected output" in npu["empty_reason"]
    tools("nvidia-smi", "echo 'No devices were found'\n")
    assert "No devices were found" in smi.snapshot("cuda")["empty_reason"]
