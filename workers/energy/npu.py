"""Ascend power through npu-smi: one `npu-smi info -t power -i NPU -c CHIP` call per chip and
read, parsed from "NPU Real-time Power(W)         : 93.4" (the `\t%-30s : %.1f` layout of
npu-smi's own source; "Power Dissipation(W)" on some boards). Which chips are the cell's:
workers/device/npu_smi.py. On an A3 board, where two chips share one NPU module, a chip
without its own reading gives no source (the record says so). npu-smi has no faster mode than
one call per read (`npu-smi info watch` refreshes once a second at best): the sampler calls
it back to back, 0.2 s apart.
"""

from __future__ import annotations

import logging
import shutil

from workers.device.npu_smi import npu_chips, parse_kv, run_npu_smi
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


class NpuSmiSource:
    """Real-time power of each chip from npu-smi, one call per chip per read."""

    def __init__(self, devices_per_cell: int) -> None:
        if shutil.which("npu-smi") is None:
            raise Unavailable("npu-smi is not on PATH")
        self.chips = npu_chips(devices_per_cell)
        first = [self._read_one(n, c) for n, c in self.chips]
        if any(v is None for v in first):
            raise Unavailable(
                "npu-smi info -t power gives no reading for "
                + ", ".join(
                    f"NPU {n} chip {c}"
                    for (n, c), v in zip(self.chips, first, strict=True)
                    if v is None
                )
            )
        labels = tuple(f"npu {n} chip {c}" for n, c in self.chips)
        self.info = SourceInfo("npu_smi_power", "power", 0.2, 1.0, labels)

    def _read_one(self, npu: int, chip: int) -> float | None:
        try:
            return parse_power(
                run_npu_smi(["info", "-t", "power", "-i", str(npu), "-c", str(chip)])
            )
        except Unavailable as exc:
            log.debug("%s", exc)
            return None

    def read(self) -> list[float | None]:
        return [self._read_one(n, c) for n, c in self.chips]

    def events(self) -> None:
        return None

    def close(self) -> None:
        pass
