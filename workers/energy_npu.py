"""Ascend power through npu-smi: one `npu-smi info -t power -i NPU -c CHIP` call per chip and
read (argv list, never a shell), parsed from "NPU Real-time Power(W)         : 93.4" (the
`\t%-30s : %.1f` layout of npu-smi's own source; "Power Dissipation(W)" on some boards).

The chips of a cell: ASCEND_RT_VISIBLE_DEVICES counts chip *logic* ids; `npu-smi info -m`
maps each to its (NPU ID, Chip ID), read by workers/smi.py's one parser. Without that map the
k-th logic id is the k-th chip of `npu-smi info`'s table (what workers/smi.py assumes too: a
container that shows cards 4-7 counts them 0-3), else NPU k, chip 0. On an
A3 board, where two chips share one NPU module, a chip without its own reading gives no
source (the record says so). npu-smi has no faster mode than one call per read (`npu-smi
info watch` refreshes once a second at best): the sampler calls it back to back, 0.2 s apart.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from workers.energy_integrate import SourceInfo
from workers.energy_sources import Unavailable, visible
from workers.smi import parse_npu_map, parse_npu_smi

log = logging.getLogger(__name__)

NPU_SMI_TIMEOUT_S = 3.0


# --- npu-smi ----------------------------------------------------------------------------


def run_npu_smi(args: list[str], timeout: float = NPU_SMI_TIMEOUT_S) -> str:
    """stdout of `npu-smi ARGS` (argv list, never a shell); raises Unavailable on failure."""
    if shutil.which("npu-smi") is None:
        raise Unavailable("npu-smi is not on PATH")
    try:
        proc = subprocess.run(
            ["npu-smi", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"npu-smi {' '.join(args)}: {type(exc).__name__}") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()[-200:]
        raise Unavailable(f"npu-smi {' '.join(args)} exited {proc.returncode}: {msg}")
    return proc.stdout


def parse_kv(text: str) -> dict[str, str]:
    """'        NPU Real-time Power(W)         : 93.4' lines -> {'NPU Real-time Power(W)': '93.4'}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def parse_chip_map(text: str) -> dict[int, tuple[int, int]]:
    """`npu-smi info -m`: chip logic id -> (NPU ID, Chip ID) (workers/smi.py's parser)."""
    return {logic: key for key, logic in parse_npu_map(text).items()}


def _table_order() -> dict[int, tuple[int, int]]:
    """Logic id k -> the k-th chip of `npu-smi info`'s table."""
    chips = parse_npu_smi(run_npu_smi(["info"]))
    return {k: (c["npu"], c["chip"]) for k, c in enumerate(chips)}


POWER_KEYS = ("NPU Real-time Power(W)", "Power Dissipation(W)")


def parse_power(text: str) -> float | None:
    kv = parse_kv(text)
    for key in POWER_KEYS:
        try:
            return float(kv[key])
        except (KeyError, ValueError):
            continue
    return None


def npu_chips(per_cell: int) -> list[tuple[int, int]]:
    """(NPU ID, Chip ID) of the cell's chips (see the module docstring for the mapping)."""
    ids = visible("npu", per_cell)
    if not all(v.isdigit() for v in ids):
        raise Unavailable(f"ASCEND_RT_VISIBLE_DEVICES={','.join(ids)} holds non-integer ids")
    chip_map: dict[int, tuple[int, int]] = {}
    for how in (lambda: parse_chip_map(run_npu_smi(["info", "-m"])), _table_order):
        try:
            chip_map = how()
        except Unavailable as exc:
            log.warning("npu-smi could not map logic ids (%s)", exc)
        if chip_map and all(int(v) in chip_map for v in ids):
            break
    return [chip_map.get(int(v), (int(v), 0)) for v in ids]


class NpuSmiSource:
    """Real-time power of each chip from npu-smi, one call per chip per read."""

    def __init__(self, per_cell: int) -> None:
        if shutil.which("npu-smi") is None:
            raise Unavailable("npu-smi is not on PATH")
        self.chips = npu_chips(per_cell)
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
