"""Device health around each cell: memory left behind, temperature, clocks, throttling.

Memory (cuda and npu, not the simulator): "in use" is the device's own figure
(``torch.{cuda,npu}.mem_get_info``: every process on the device) minus the blocks this
process's caching allocator holds free (``memory_reserved - memory_allocated``, reusable by
the next cell, so not left behind). Per worker process:

  baseline   in use when the worker first measured a cell (before it loaded any model)
  footprint  what loading the current model added (in use after load - in use before)
  dirty      a cell starts with more than baseline + footprint + tolerance in use, or a model
             is loaded onto more than baseline + tolerance: memory another cell (or a process
             that did not exit) left behind. Flag ``dirty_start``; the sweep replaces the
             worker before its next cell (sweep/app.py)
  tolerance  max(256 MiB, 2 % of the device's memory)

Telemetry before and after the measured window: cuda through NVML (temperature, SM and
memory clocks, clock-event reasons; the energy sampler also polls the reasons during the
window), npu through `npu-smi info -t common` (temperature, AI Core rated and current
frequency, power) and `-t health` (health status and error codes). Flag ``throttled``: an
NVML reason in THROTTLE_REASONS seen during the window or right after it; on Ascend (which
has no clock-event reasons) a health status other than OK before or after the window.
Nothing here may fail a cell: every probe that fails leaves its error in the block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jobs.record import Flag
from workers import energy_npu as npu_smi
from workers import energy_sources as src

log = logging.getLogger(__name__)

MIB = 2**20
TOLERANCE_BYTES = 256 * MIB
TOLERANCE_FRACTION = 0.02
# NVML clock-event reason bits (nvml.h: nvmlClocksEventReason*) and which count as throttling.
REASON_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}  # fmt: skip
THROTTLE_REASONS = (0x4, 0x8, 0x20, 0x40, 0x80)
HEALTHY = ("OK",)


def reason_names(mask: int, only_throttle: bool = False) -> list[str]:
    bits = THROTTLE_REASONS if only_throttle else tuple(REASON_BITS)
    return [REASON_BITS[b] for b in bits if mask & b]


def memory_in_use(kind: str) -> tuple[int, int] | None:
    """(bytes in use on the device, less this process's free cached blocks; total), or None."""
    try:
        import torch

        mod = getattr(torch, kind)
        free, total = mod.mem_get_info()
        cached = int(mod.memory_reserved()) - int(mod.memory_allocated())
        return int(total) - int(free) - max(cached, 0), int(total)
    except Exception as exc:  # no torch_npu mem_get_info, no device: no memory check
        log.debug("memory_in_use(%s) failed: %s", kind, exc)
        return None


@dataclass
class WorkerMemory:
    """What this worker process has seen of its device's memory."""

    baseline: int | None = None
    footprint: int = 0
    before_load: int | None = None
    dirty: list[str] = field(default_factory=list)  # found while loading, for the next check


_WORKER: dict[str, WorkerMemory] = {}
PROBE = {"memory": memory_in_use}  # tests replace the probe


def tolerance(total: int | None) -> int:
    return max(TOLERANCE_BYTES, int(TOLERANCE_FRACTION * (total or 0)))


def loading_started(kind: str) -> None:
    """Right before a model is loaded (after the previous one was dropped)."""
    state, now = _WORKER.setdefault(kind, WorkerMemory()), PROBE["memory"](kind)
    state.footprint, state.before_load = 0, None
    if now is None:
        return
    if state.baseline is None:
        state.baseline = now[0]
    extra = now[0] - state.baseline
    if extra > tolerance(now[1]):
        state.dirty.append(f"{extra / MIB:.0f} MiB above the worker's baseline before loading")
    state.before_load = now[0]


def loading_finished(kind: str) -> None:
    state, now = _WORKER.setdefault(kind, WorkerMemory()), PROBE["memory"](kind)
    if now is not None and state.before_load is not None:
        state.footprint = max(0, now[0] - state.before_load)


def memory_check(kind: str) -> dict[str, Any]:
    """Before a cell's iterations (its model loaded): in use now against baseline + the
    model's footprint, and whatever loading found left behind."""
    state, now = _WORKER.setdefault(kind, WorkerMemory()), PROBE["memory"](kind)
    if now is None:
        return {"checked": False}
    if state.baseline is None:
        state.baseline = now[0]
    leftover = now[0] - state.baseline - state.footprint
    dirty, state.dirty = state.dirty, []  # what loading found is reported once, with this cell
    if leftover > tolerance(now[1]):
        dirty.append(f"{leftover / MIB:.0f} MiB in use beyond baseline + model")
    return {
        "checked": True,
        "in_use_bytes": now[0],
        "total_bytes": now[1],
        "baseline_bytes": state.baseline,
        "model_bytes": state.footprint,
        "leftover_bytes": leftover,
        "tolerance_bytes": tolerance(now[1]),
        "dirty": dirty,
    }


# --- telemetry --------------------------------------------------------------------------


def nvml_telemetry(per_cell: int) -> list[dict[str, Any]]:
    nvml = src.import_pynvml()
    nvml.nvmlInit()
    try:
        handles, labels = src.nvml_handles(nvml, per_cell)
        out = []
        for h, label in zip(handles, labels, strict=True):
            row: dict[str, Any] = {"device": label}
            probes = {
                "temp_c": lambda h=h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
                "sm_clock_mhz": lambda h=h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
                "mem_clock_mhz": lambda h=h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
                "clock_event_reasons": lambda h=h: src.clock_event_reasons(nvml, h),
            }
            for key, probe in probes.items():
                try:
                    row[key] = probe()
                except nvml.NVMLError as exc:
                    row[key] = None
                    row.setdefault("errors", []).append(f"{key}: {exc}")
            out.append(row)
        return out
    finally:
        nvml.nvmlShutdown()


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def npu_telemetry(per_cell: int) -> list[dict[str, Any]]:
    out = []
    for npu, chip in npu_smi.npu_chips(per_cell):
        ids = ["-i", str(npu), "-c", str(chip)]
        row: dict[str, Any] = {"device": f"npu {npu} chip {chip}"}
        try:
            kv = npu_smi.parse_kv(npu_smi.run_npu_smi(["info", "-t", "common", *ids]))
            row.update(
                temp_c=_num(kv.get("Temperature(C)") or kv.get("NPU Temperature (C)")),
                aicore_freq_mhz=_num(kv.get("Aicore Freq(MHZ)")),
                aicore_cur_freq_mhz=_num(kv.get("Aicore curFreq(MHZ)")),
                power_w=_num(kv.get("NPU Real-time Power(W)")),
            )
        except src.Unavailable as exc:
            row.setdefault("errors", []).append(str(exc))
        try:
            kv = npu_smi.parse_kv(npu_smi.run_npu_smi(["info", "-t", "health", *ids]))
            row["health"] = kv.get("Health Status") or kv.get("Health")
            row["error_code"] = kv.get("Error Code")
        except src.Unavailable as exc:
            row.setdefault("errors", []).append(str(exc))
        out.append(row)
    return out


TELEMETRY = {"cuda": nvml_telemetry, "npu": npu_telemetry}


def telemetry(kind: str, per_cell: int) -> list[dict[str, Any]] | dict[str, str]:
    try:
        return TELEMETRY[kind](per_cell)
    except Exception as exc:  # a missing tool or library: say so, go on
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- one cell ---------------------------------------------------------------------------


def _max_temp(rows: Any) -> float | None:
    temps = [r.get("temp_c") for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    temps = [t for t in temps if isinstance(t, (int, float))]
    return max(temps) if temps else None


def _throttling(kind: str, window_masks: list[int], before: Any, after: Any) -> list[str]:
    """Why the device counts as throttled during the window ([] = it did not)."""
    rows = [r for r in (after if isinstance(after, list) else []) if isinstance(r, dict)]
    if kind == "cuda":
        mask = 0
        for m in [*window_masks, *(r.get("clock_event_reasons") for r in rows)]:
            mask |= m or 0
        return reason_names(mask, only_throttle=True)
    out = []
    for when, snap in (("before", before), ("after", after)):
        for r in snap if isinstance(snap, list) else []:
            status = r.get("health") if isinstance(r, dict) else None
            if status is not None and status not in HEALTHY:
                out.append(
                    f"health {status} {when} ({r['device']}, error code {r.get('error_code')})"
                )
    return out


class CellHealth:
    """Health of one cell: ``before()`` ahead of loading and measuring, ``after()`` once the
    measured window closed. A simulated or cpu cell has nothing to check."""

    def __init__(self, kind: str, per_cell: int, simulated: bool) -> None:
        self.kind, self.per_cell = kind, per_cell
        self.active = kind in TELEMETRY and not simulated
        self.memory: dict[str, Any] = {}
        self.start: Any = None

    def before(self) -> None:
        if self.active:
            self.memory = memory_check(self.kind)
            self.start = telemetry(self.kind, self.per_cell)

    def after(self, window_masks: list[int]) -> tuple[dict[str, Any], list[Flag], dict | None]:
        """(flat record keys, flags, the nested `health` block or None)."""
        fields = dict.fromkeys(HEALTH_KEYS)
        if not self.active:
            return fields, [], None
        end = telemetry(self.kind, self.per_cell)
        throttle = _throttling(self.kind, window_masks, self.start, end)
        flags = []
        if self.memory.get("dirty"):
            flags.append(Flag.DIRTY_START)
        if throttle:
            flags.append(Flag.THROTTLED)
        fields.update(
            memory_leftover_bytes=self.memory.get("leftover_bytes"),
            temp_c_start=_max_temp(self.start),
            temp_c_end=_max_temp(end),
            throttle_reasons=throttle,
        )
        block = {
            "memory": self.memory,
            "before": self.start,
            "after": end,
            "window_clock_event_reasons": [reason_names(m) for m in window_masks],
        }
        return fields, flags, block


HEALTH_KEYS = ("memory_leftover_bytes", "temp_c_start", "temp_c_end", "throttle_reasons")


@contextmanager
def loading(kind: str, simulated: bool) -> Iterator[None]:
    """Around a model load: what the model adds, and what an earlier one left behind."""
    active = kind in TELEMETRY and not simulated
    if active:
        loading_started(kind)
    yield
    if active:
        loading_finished(kind)
