"""Device snapshots from the vendors' command-line tools: `npu-smi info` and `nvidia-smi`.

``snapshot(kind)`` runs the tool (argv lists, never a shell; 5 s timeout each) and returns
``{"tool", "devices": [...], "visible", "filtered", "id_source"}``, or None where there is no
tool to ask (cpu). A tool that is missing, fails or times out gives ``{"tool", "error"}``, and
a snapshot whose device list ends up empty says why in ``empty_reason``: a record never holds
a silently empty snapshot.

Which rows are this process's devices: both tools list every device the node (or container)
shows, whatever this process may use. ASCEND_RT_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES hold
*logical* ids, and each device gets the logical id those variables count (``device_id``):
  npu:  the "Chip Logic ID" of `npu-smi info -m` (NPU ID, Chip ID -> logical id), which is not
        the NPU id when a container exposes cards 4-7 as logical 0-3, nor on an Atlas A3 (two
        chips per card). Without that mapping, the position among the chips in table order
        (``id_source`` says which), the order the driver numbers them in.
  cuda: nvidia-smi's index (PCI bus order); CUDA counts in the same order when
        CUDA_DEVICE_ORDER=PCI_BUS_ID, and on a node of identical GPUs either way.
With integer ids set, only those devices are kept, in the variable's order (the first is this
process's device 0). Ids that are not integers (GPU UUIDs, MIG) keep every device
(``filtered`` False).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from workers.device.npu_smi import number, parse_npu_map, parse_npu_smi
from workers.device.tools import Unavailable, run_tool
from workers.device.visible import VISIBLE_ENV, visible_ids

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
NVIDIA_FIELDS = (
    "index",
    "name",
    "memory.used",
    "memory.total",
    "power.draw",
    "temperature.gpu",
    "utilization.gpu",
)
NPU_MAP_COMMAND = ["npu-smi", "info", "-m"]
COMMANDS = {
    "npu": ["npu-smi", "info"],
    "cuda": [
        "nvidia-smi",
        "--query-gpu=" + ",".join(NVIDIA_FIELDS),
        "--format=csv,noheader,nounits",
    ],
}


def _int(text: str) -> int | None:
    value = number(text)
    return int(value) if value is not None else None


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
                "power_w": number(power),
                "temp_c": number(temp),
                "utilization_pct": number(util),
            }
        )
    return gpus


def assign_logical_ids(chips: list[dict[str, Any]], mapping: dict | None) -> str:
    """Set each chip's ``device_id`` to its logical id; returns where the ids came from."""
    if mapping and all((c["npu"], c["chip"]) in mapping for c in chips):
        for c in chips:
            c["device_id"] = mapping[(c["npu"], c["chip"])]
        return "npu-smi info -m"
    for position, c in enumerate(chips):
        c["device_id"] = position
    return "table order"


def filter_visible(devices: list[dict[str, Any]], ids: list[int] | None) -> list[dict[str, Any]]:
    """The devices whose logical id is in ``ids``, in the order of ``ids``."""
    if ids is None:
        return devices
    by_id = {d["device_id"]: d for d in devices}
    return [by_id[i] for i in ids if i in by_id]


def _run(argv: list[str]) -> tuple[str | None, str | None]:
    """(stdout, None) or (None, why it failed)."""
    try:
        return run_tool(argv, TIMEOUT_S), None
    except Unavailable as exc:
        log.warning("%s failed: %s", " ".join(argv), exc)
        return None, str(exc)


def _devices(kind: str, text: str) -> tuple[list[dict[str, Any]], str]:
    if kind == "cuda":
        return parse_nvidia_smi(text), "nvidia-smi index"
    chips = parse_npu_smi(text)
    mapping_text, _ = _run(NPU_MAP_COMMAND) if chips else (None, None)
    return chips, assign_logical_ids(chips, parse_npu_map(mapping_text or ""))


def _empty_reason(kind: str, text: str, found: list, ids: list[int] | None) -> str | None:
    var = VISIBLE_ENV[kind]
    if not found:
        first = " | ".join(line.strip() for line in text.strip().splitlines()[:3])[:300]
        return f"{COMMANDS[kind][0]} printed no device rows this parser reads: {first!r}"
    seen = ",".join(str(d["device_id"]) for d in found)
    return f"no device has a logical id in {var}={os.environ.get(var)} (ids seen: {seen})"


def snapshot(kind: str) -> dict[str, Any] | None:
    """The device tool's view of this process's devices now (see the module docstring)."""
    argv = COMMANDS.get(kind)
    if argv is None:
        return None
    if shutil.which(argv[0]) is None:
        return {"tool": argv[0], "error": f"{argv[0]} not found on PATH"}
    text, error = _run(argv)
    if text is None:
        return {"tool": argv[0], "error": error}
    found, id_source = _devices(kind, text)
    ids = visible_ids(kind)
    devices = filter_visible(found, ids)
    snap = {
        "tool": argv[0],
        "devices": devices,
        "visible": os.environ.get(VISIBLE_ENV[kind]),
        "filtered": ids is not None,
        "id_source": id_source,
    }
    if not devices:
        snap["empty_reason"] = _empty_reason(kind, text, found, ids)
        log.warning("%s snapshot is empty: %s", argv[0], snap["empty_reason"])
    return snap
