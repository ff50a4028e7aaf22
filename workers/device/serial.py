"""The serial number or UUID of the card a cell runs on (its first device), for fleet tables:
cuda through torch's device UUID (NVML's form, ``GPU-...``), npu through ``npu-smi info -t
board`` (its ``Serial Number``). None when the tool gives none (the simulator, cpu, a tool
that is missing or fails): a serial must never fail a cell."""

from __future__ import annotations

import logging

from workers.device import npu_smi
from workers.device import nvml as nvml_lib

log = logging.getLogger(__name__)


def _npu_serial() -> str | None:
    (npu, chip), *_ = npu_smi.npu_chips(1)
    kv = npu_smi.parse_kv(
        npu_smi.run_npu_smi(["info", "-t", "board", "-i", str(npu), "-c", str(chip)])
    )
    return kv.get("Serial Number") or kv.get("Serial number") or None


def device_serial(kind: str) -> str | None:
    try:
        if kind == "cuda":
            uuids = nvml_lib._torch_uuids(1)
            return uuids[0] if uuids else None
        if kind == "npu":
            return _npu_serial()
    except Exception as exc:  # missing tool, unknown chip map: no serial
        log.info("no device serial: %s", exc)
    return None
