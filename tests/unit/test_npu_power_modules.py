"""Atlas A3 power per module: npu-smi prints `-` for die 1 and the module's figure for die 0, so
a cell is charged its share of the module (by die count), the module is read once however many
of its dies the cell holds, and a cell holding part of a module is flagged shared_power_module.
npu-smi is a stand-in executable on PATH (argv list, never a shell)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from jobs.record import FLAG_MEANINGS, Flag
from workers.device import tools as es
from workers.energy import meter as em
from workers.energy import npu as en

FIXTURES = Path(__file__).parents[1] / "fixtures" / "energy"
A3_MAP = {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1)}  # tests/fixtures/energy/npu-smi-m-a3-2x2.txt
B3_MAP = {k: (k, 0) for k in range(8)}  # Atlas 800T A2: one chip per NPU


@pytest.fixture
def a3_smi(tmp_path, monkeypatch):
    """`info -m`: the A3 2x2 map; `info -t power -i N -c 0`: the module's watts (166.5 on NPU 0,
    168.1 on NPU 1, as tests/fixtures/smi/npu-smi-a3-2x2.txt), `-c 1`: `-`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.log"
    script = bin_dir / "npu-smi"
    script.write_text(
        f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in
  "info -m") /bin/cat {FIXTURES / "npu-smi-m-a3-2x2.txt"} ;;
  "info -t power -i 0 -c 0") printf '\\t%-30s : %s\\n' "NPU Real-time Power(W)" 166.5 ;;
  "info -t power -i 1 -c 0") printf '\\t%-30s : %s\\n' "NPU Real-time Power(W)" 168.1 ;;
  "info -t power -i "*) printf '\\t%-30s : %s\\n' "NPU Real-time Power(W)" - ;;
  *) exit 2 ;;
esac
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    return log


def reader(values: dict[tuple[int, int], float | None]):
    return lambda npu, chip: values.get((npu, chip))


def test_a3_modules_share_by_die_count():
    read = reader({(0, 0): 166.5, (0, 1): None, (1, 0): 168.1, (1, 1): None})
    one = en.power_modules([(0, 1)], A3_MAP, read)  # the die without a reading of its own
    assert [(m.npu, m.dies, m.readers, m.held, m.share) for m in one] == [
        (0, (0, 1), (0,), (1,), 0.5)
    ]
    assert one[0].shared
    both = en.power_modules([(0, 0), (0, 1)], A3_MAP, read)  # one module, read once, share 1
    assert len(both) == 1 and both[0].share == 1 and not both[0].shared
    two = en.power_modules([(1, 0), (0, 0)], A3_MAP, read)
    assert [(m.npu, m.share) for m in two] == [(1, 0.5), (0, 0.5)]


def test_one_chip_per_npu_is_its_own_module():
    read = reader({(k, 0): 300.0 + k for k in range(8)})
    mods = en.power_modules([(5, 0), (6, 0)], B3_MAP, read)
    assert [(m.dies, m.share, m.label()) for m in mods] == [
        ((0,), 1.0, "npu 5 chip 0"), ((0,), 1.0, "npu 6 chip 0")
    ]  # fmt: skip


def test_no_reading_on_any_die_is_unavailable():
    with pytest.raises(es.Unavailable, match="no reading for NPU 0 chip 1"):
        en.power_modules([(0, 1)], A3_MAP, reader({}))


@pytest.mark.parametrize(
    "visible, watts, shared",
    [("1", [166.5 / 2], True), ("0", [166.5 / 2], True), ("0,1", [166.5], False),
     ("2,0", [168.1 / 2, 166.5 / 2], True)],
)  # fmt: skip
def test_a3_source_charges_the_cells_share(a3_smi, monkeypatch, visible, watts, shared):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", visible)
    source = en.NpuSmiSource(devices_per_cell=len(visible.split(",")))
    assert source.read() == pytest.approx(watts)
    assert "per module" in source.info.note
    block = {"power_modules": source.power_modules()}
    assert em.shares_power_module(block) is shared
    calls = a3_smi.read_text().splitlines()
    assert not any("-c 1" in c for c in calls[-len(watts) :])  # reads go to die 0 only


def test_meter_block_and_flag(a3_smi, monkeypatch):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1")
    with em.EnergyMeter("npu", 1) as meter:
        with meter.window():
            pass
        _, block = meter.result([])
    assert block["power_modules"] == [
        {"npu": 0, "dies": [0, 1], "read_on": [0], "held": [1], "share": 0.5}
    ]
    assert em.shares_power_module(block)
    assert not em.shares_power_module({"source": "rapl"})


def test_flag_has_a_meaning_and_a_mark():
    from aggregate.tables import FLAG_MARKS

    assert Flag.SHARED_POWER_MODULE.value == "shared_power_module"
    assert "share" in FLAG_MEANINGS[Flag.SHARED_POWER_MODULE]
    assert FLAG_MARKS["shared_power_module"] not in {
        v for k, v in FLAG_MARKS.items() if k != "shared_power_module"
    }
