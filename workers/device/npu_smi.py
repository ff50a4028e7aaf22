"""`npu-smi`, the one way this project asks an Ascend board anything: the runner, and the
parsers of its outputs (the chip table of `npu-smi info`, the chip map of `npu-smi info -m`,
the `key : value` lines of `npu-smi info -t ...`).

The chips of a cell: ASCEND_RT_VISIBLE_DEVICES counts chip *logic* ids; `npu-smi info -m`
maps each to its (NPU ID, Chip ID). Without that map the k-th logic id is the k-th chip of
`npu-smi info`'s table (a container that shows cards 4-7 counts them 0-3), else NPU k, chip 0.
"""

from __future__ import annotations

import logging
import re
import shutil
from typing import Any

from workers.device.tools import Unavailable, run_tool
from workers.device.visible import visible

log = logging.getLogger(__name__)

NPU_SMI_TIMEOUT_S = 3.0
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")


def run_npu_smi(args: list[str], timeout: float | None = None) -> str:
    """stdout of `npu-smi ARGS` (argv list, never a shell); raises Unavailable on failure."""
    if shutil.which("npu-smi") is None:
        raise Unavailable("npu-smi is not on PATH")
    try:
        return run_tool(["npu-smi", *args], NPU_SMI_TIMEOUT_S if timeout is None else timeout)
    except Unavailable as exc:
        raise Unavailable(f"npu-smi {' '.join(args)}: {exc}") from None


def number(text: str) -> float | None:
    """'97.5' -> 97.5; '-', 'NA', 'N/A', '[N/A]', '[Not Supported]' -> None."""
    try:
        return float(text.strip())
    except ValueError:
        return None


def _cells(line: str) -> list[str]:
    """'| a | b | c |' -> ['a', 'b', 'c']."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_kv(text: str) -> dict[str, str]:
    """'        NPU Real-time Power(W)         : 93.4' lines -> {'NPU Real-time Power(W)': '93.4'}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def parse_npu_smi(text: str) -> list[dict[str, Any]]:
    """One dict per chip from the table of `npu-smi info` (910B, Atlas A3 and 310P layouts).

    Each chip takes two rows: "NPU Name | Health | Power(W) Temp(C) Hugepages-Usage(page)" and
    "Chip [Phy-ID] | Bus-Id | AICore(%) Memory-Usage(MB) [HBM-Usage(MB)]". The process table
    that follows the chip table is not read.
    """
    chips: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        if "Process id" in line:
            break  # the process table: its rows look like chip rows
        cells = _cells(line)
        if len(cells) < 3 or cells[0].startswith(("NPU", "Chip", "npu-smi")):
            continue
        first = cells[0].split()
        if pending is None:
            if len(first) < 2 or not first[0].isdigit():
                continue
            power_temp = cells[2].split()
            pending = {
                "npu": int(first[0]),
                "name": " ".join(first[1:]),
                "health": cells[1],
                "power_w": number(power_temp[0]) if power_temp else None,
                "temp_c": number(power_temp[1]) if len(power_temp) > 1 else None,
            }
            continue
        if not first or not first[0].isdigit():
            pending = None  # not the second row of a chip: start over
            continue
        usage = cells[2].split()
        pairs = [(int(a), int(b)) for a, b in _PAIR.findall(cells[2])]
        chip = {
            **pending,
            "chip": int(first[0]),
            "phy_id": int(first[1]) if len(first) > 1 and first[1].isdigit() else None,
            "bus_id": cells[1],
            "aicore_pct": number(usage[0]) if usage else None,
            "memory_used_mb": pairs[0][0] if pairs else None,
            "memory_total_mb": pairs[0][1] if pairs else None,
            "hbm_used_mb": pairs[1][0] if len(pairs) > 1 else None,
            "hbm_total_mb": pairs[1][1] if len(pairs) > 1 else None,
        }
        chips.append(chip)
        pending = None
    return chips


def parse_npu_map(text: str) -> dict[tuple[int, int], int]:
    """(NPU ID, Chip ID) -> Chip Logic ID from `npu-smi info -m`; rows without a logical id
    (the Mcu of each card) are left out."""
    mapping = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        if parts[2].isdigit():
            mapping[(int(parts[0]), int(parts[1]))] = int(parts[2])
    return mapping


def parse_chip_map(text: str) -> dict[int, tuple[int, int]]:
    """`npu-smi info -m`: chip logic id -> (NPU ID, Chip ID)."""
    return {logic: key for key, logic in parse_npu_map(text).items()}


def _table_order() -> dict[int, tuple[int, int]]:
    """Logic id k -> the k-th chip of `npu-smi info`'s table."""
    chips = parse_npu_smi(run_npu_smi(["info"]))
    return {k: (c["npu"], c["chip"]) for k, c in enumerate(chips)}


def npu_chips(devices_per_cell: int) -> list[tuple[int, int]]:
    """(NPU ID, Chip ID) of the cell's chips (see the module docstring for the mapping)."""
    return npu_chips_and_map(devices_per_cell)[0]


def npu_chips_and_map(
    devices_per_cell: int,
) -> tuple[list[tuple[int, int]], dict[int, tuple[int, int]]]:
    """The cell's chips, and the logic id -> (NPU ID, Chip ID) map they came from."""
    ids = visible("npu", devices_per_cell)
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
    return [chip_map.get(int(v), (int(v), 0)) for v in ids], chip_map
