"""Device snapshots from the vendors' command-line tools: `npu-smi info` and `nvidia-smi`.

``snapshot(kind)`` runs the tool (argv list, never a shell; 5 s timeout) and returns
``{"tool", "devices": [...], "visible", "filtered"}``, or None where there is nothing to ask
(cpu) or the tool is not installed. A tool that fails or times out gives ``{"tool", "error"}``:
the record says why the snapshot is missing instead of hiding it.

Which rows are kept: both tools list every device of the node, whatever this process may
see. When ASCEND_RT_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES holds integer ids, only those
devices are kept, matched on ``device_id``:
  npu:  the Phy-ID column where npu-smi prints one (Atlas A3: two chips per NPU), else the NPU
        id (one chip per NPU, as on the Atlas 800T A2 / 910B). This assumes the logical ids
        that ASCEND_RT_VISIBLE_DEVICES counts follow that order (check `npu-smi info -m`).
  cuda: nvidia-smi's index (PCI bus order); CUDA counts in the same order when
        CUDA_DEVICE_ORDER=PCI_BUS_ID, and on a node of identical GPUs either way.
Ids that are not integers (GPU UUIDs, MIG) leave the list unfiltered (``filtered`` False).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
VISIBLE_ENV = {"npu": "ASCEND_RT_VISIBLE_DEVICES", "cuda": "CUDA_VISIBLE_DEVICES"}
NVIDIA_FIELDS = (
    "index",
    "name",
    "memory.used",
    "memory.total",
    "power.draw",
    "temperature.gpu",
    "utilization.gpu",
)
COMMANDS = {
    "npu": ["npu-smi", "info"],
    "cuda": [
        "nvidia-smi",
        "--query-gpu=" + ",".join(NVIDIA_FIELDS),
        "--format=csv,noheader,nounits",
    ],
}

_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")


def _number(text: str) -> float | None:
    """'97.5' -> 97.5; '-', 'NA', 'N/A', '[N/A]', '[Not Supported]' -> None."""
    try:
        return float(text.strip())
    except ValueError:
        return None


def _int(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None else None


def _cells(line: str) -> list[str]:
    """'| a | b | c |' -> ['a', 'b', 'c']."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


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
                "power_w": _number(power_temp[0]) if power_temp else None,
                "temp_c": _number(power_temp[1]) if len(power_temp) > 1 else None,
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
            "aicore_pct": _number(usage[0]) if usage else None,
            "memory_used_mb": pairs[0][0] if pairs else None,
            "memory_total_mb": pairs[0][1] if pairs else None,
            "hbm_used_mb": pairs[1][0] if len(pairs) > 1 else None,
            "hbm_total_mb": pairs[1][1] if len(pairs) > 1 else None,
        }
        chip["device_id"] = chip["phy_id"] if chip["phy_id"] is not None else chip["npu"]
        chips.append(chip)
        pending = None
    return chips


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """One dict per GPU from `nvidia-smi --query-gpu=<NVIDIA_FIELDS> --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(NVIDIA_FIELDS) or not parts[0].isdigit():
            continue
        index, name, mem_used, mem_total, power, temp, util = parts
        gpus.append(
            {
                "index": int(index),
                "device_id": int(index),
                "name": name,
                "memory_used_mb": _int(mem_used),
                "memory_total_mb": _int(mem_total),
                "power_w": _number(power),
                "temp_c": _number(temp),
                "utilization_pct": _number(util),
            }
        )
    return gpus


def visible_ids(kind: str) -> list[int] | None:
    """Integer ids in the kind's *_VISIBLE_DEVICES, or None (unset, empty, or not integers)."""
    value = os.environ.get(VISIBLE_ENV.get(kind, ""), "").strip()
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(v.isdigit() for v in items):
        return None
    return [int(v) for v in items]


def filter_visible(devices: list[dict[str, Any]], ids: list[int] | None) -> list[dict[str, Any]]:
    if ids is None:
        return devices
    return [d for d in devices if d["device_id"] in ids]


PARSERS = {"npu": parse_npu_smi, "cuda": parse_nvidia_smi}


def snapshot(kind: str) -> dict[str, Any] | None:
    """The device tool's view of this process's devices now (see the module docstring)."""
    argv = COMMANDS.get(kind)
    if argv is None or shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s failed: %s", argv[0], exc)
        return {"tool": argv[0], "error": f"{type(exc).__name__}: {exc}"}
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()[-500:]
        log.warning("%s exited with %d: %s", argv[0], proc.returncode, msg)
        return {"tool": argv[0], "error": f"exit {proc.returncode}: {msg}"}
    ids = visible_ids(kind)
    devices = PARSERS[kind](proc.stdout)
    return {
        "tool": argv[0],
        "devices": filter_visible(devices, ids),
        "visible": os.environ.get(VISIBLE_ENV[kind]),
        "filtered": ids is not None,
    }
