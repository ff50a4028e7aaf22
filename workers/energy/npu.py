"""Ascend power through npu-smi: one `npu-smi info -t power -i NPU -c CHIP` call per chip and
read, parsed from "NPU Real-time Power(W)         : 93.4" (the `\t%-30s : %.1f` layout of
npu-smi's own source; "Power Dissipation(W)" on some boards). Which chips are the cell's:
workers/device/npu_smi.py. npu-smi has no faster mode than one call per read (`npu-smi info
watch` refreshes once a second at best): the sampler calls it back to back, 0.2 s apart.

Power modules (Atlas A3): two dies (chips) share one NPU module and one power reading; npu-smi
prints `-` for die 1 and the module's figure for die 0. So the unit read is a
:class:`PowerModule`: on an NPU where a die has no reading of its own while another has, the
module's dies are the NPU's chips of `info -m` and its power is what the reading dies show; a
cell is charged the module's power times its share of the module's dies (held / all, an
estimate: the dies' own draws are not known), and the module is read once per cell however
many of its dies the cell holds. Elsewhere (910B: one chip per NPU) every chip is its own
module, share 1. A cell holding part of a module is flagged ``shared_power_module``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from workers.device.npu_smi import npu_chips_and_map, parse_kv, run_npu_smi
from workers.device.tools import Unavailable
from workers.energy.integrate import SourceInfo

log = logging.getLogger(__name__)

POWER_KEYS = ("NPU Real-time Power(W)", "Power Dissipation(W)")


def parse_power(text: str) -> float | None:
    kv = parse_kv(text)
    for key in POWER_KEYS:
        try:
            return float(kv[key])
        except (KeyError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class PowerModule:
    """What one power figure covers: ``dies`` of NPU ``npu``, read on ``readers``; the cell
    holds ``held`` of them and is charged ``share`` of the figure."""

    npu: int
    dies: tuple[int, ...]
    readers: tuple[int, ...]
    held: tuple[int, ...]

    @property
    def share(self) -> float:
        return len(self.held) / len(self.dies)

    @property
    def shared(self) -> bool:
        return len(self.dies) > 1 and self.share < 1

    def label(self) -> str:
        if len(self.dies) == 1:
            return f"npu {self.npu} chip {self.dies[0]}"
        held = ",".join(map(str, self.held))
        return (
            f"npu {self.npu} module (chips {','.join(map(str, self.dies))}, power on chip "
            f"{','.join(map(str, self.readers))}) x {len(self.held)}/{len(self.dies)} "
            f"(cell holds chip {held})"
        )

    def block(self) -> dict[str, object]:
        return {"npu": self.npu, "dies": list(self.dies), "read_on": list(self.readers),
                "held": list(self.held), "share": self.share}  # fmt: skip


Reader = Callable[[int, int], "float | None"]


def power_modules(
    held: list[tuple[int, int]], chip_map: dict[int, tuple[int, int]], read: Reader
) -> list[PowerModule]:
    """Group the cell's chips into power modules, probing each die of their NPUs once;
    raises Unavailable where a chip's power cannot be read on its own or its module's."""
    out: list[PowerModule] = []
    for npu in dict.fromkeys(n for n, _ in held):
        mine = tuple(c for n, c in held if n == npu)
        dies = tuple(sorted({c for n, c in chip_map.values() if n == npu} | set(mine)))
        got = {c: read(npu, c) for c in dies}
        readers = tuple(c for c in dies if got[c] is not None)
        lacking = [c for c in mine if got[c] is None]
        if lacking and not readers:
            chips = ", ".join(f"NPU {npu} chip {c}" for c in lacking)
            raise Unavailable(f"npu-smi info -t power gives no reading for {chips}")
        if len(readers) == len(dies):  # every die reads its own power: one module per chip
            out.extend(PowerModule(npu, (c,), (c,), (c,)) for c in mine)
        else:
            out.append(PowerModule(npu, dies, readers, mine))
    return out


class NpuSmiSource:
    """Real-time power of each chip from npu-smi, one call per chip per read."""

    def __init__(self, devices_per_cell: int) -> None:
        if shutil.which("npu-smi") is None:
            raise Unavailable("npu-smi is not on PATH")
        self.chips, chip_map = npu_chips_and_map(devices_per_cell)
        self.modules = power_modules(self.chips, chip_map, self._read_one)
        labels = tuple(m.label() for m in self.modules)
        note = ""
        if any(len(m.dies) > 1 for m in self.modules):
            note = "power read per module (Atlas A3: one figure for two dies); charged by share"
        self.info = SourceInfo("npu_smi_power", "power", 0.2, 1.0, labels, note=note)

    def _read_one(self, npu: int, chip: int) -> float | None:
        try:
            return parse_power(
                run_npu_smi(["info", "-t", "power", "-i", str(npu), "-c", str(chip)])
            )
        except Unavailable as exc:
            log.debug("%s", exc)
            return None

    def read(self) -> list[float | None]:
        return [self._module_power(m) for m in self.modules]

    def _module_power(self, m: PowerModule) -> float | None:
        values = [self._read_one(m.npu, c) for c in m.readers]
        return None if None in values else sum(values) * m.share  # type: ignore[arg-type]

    def events(self) -> None:
        return None

    def power_modules(self) -> list[dict[str, object]]:
        """The modules read, with the cell's share of each (the record's energy block)."""
        return [m.block() for m in self.modules]

    def close(self) -> None:
        pass
