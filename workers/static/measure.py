"""A static cell: warm-up and timed iterations of one batch, through one backend.

:class:`StaticCell` loads (or reuses, ``workers.model_cache``) the cell's backend on this
process's device and fills the cell's :class:`~jobs.record.Outcome`: each part returns its
own piece (the metrics, the memory, the bounds, the backend's report) and the outcome is
assembled here, once. What it raises becomes a failed (or oom) outcome in ``workers.run``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from jobs.config import CellConfig
from jobs.record import Flag, Outcome, Status
from workers.base import Backend, BackendReport, CellOOM, IterationResult, backend_class
from workers.device import health
from workers.device.bounding import bound_fields
from workers.device.devices import VISIBLE_ENV, open_device
from workers.device.host import (
    ActivityWindow,
    HostActivity,
    check_fits,
    check_model_here,
    host_busy,
)
from workers.device.serial import device_serial
from workers.device.smi import snapshot
from workers.energy.meter import EnergyMeter, shares_power_module
from workers.energy.simulated import simulated_result
from workers.metrics import cell_metrics
from workers.model_cache import get_model, is_loaded
from workers.models import model_config_json
from workers.quality.check import token_checks

log = logging.getLogger(__name__)


def _iterations(
    backend: Backend, cell: CellConfig, device: Any, meter: EnergyMeter | None = None
) -> tuple[list[IterationResult], ActivityWindow | None]:
    """Warm-up, then the measured window (and the host's activity during it); ``meter``
    samples energy during the measured iterations only."""
    backend.prepare(cell)
    for _ in range(cell.bench.warmup):
        backend.run_iteration()
    device.reset_peak_memory()
    its: list[IterationResult] = []
    activity = HostActivity()
    b = cell.bench
    with meter.window() if meter is not None else contextlib.nullcontext():
        activity.start()
        t0 = time.perf_counter()
        while len(its) < b.iterations or (
            time.perf_counter() - t0 < b.min_duration_s and len(its) < b.max_iterations
        ):
            if meter is not None:
                meter.iteration()
            its.append(backend.run_iteration())
        window = activity.stop()
    return its, window


def _check_fits(cell: CellConfig, device: Any) -> int | None:
    """Refuse a cell that cannot fit before loading or allocating anything (hf only: the
    simulator has its own memory model, an engine manages its own pool)."""
    if cell.backend.name != "hf":
        return None
    try:
        config = model_config_json(cell.model)[1]
    except (OSError, ValueError):
        return None
    dtype = cell.model.dtype
    if dtype == "auto":
        dtype = "float32" if device.kind == "cpu" else "float16"
    loaded = is_loaded(cell, device.kind)
    return check_fits(cell, config, dtype, loaded, device.available_memory())


@dataclass
class _Measured:
    its: list[IterationResult]
    activity: ActivityWindow | None  # the host's activity during the window
    fields: dict[str, Any]  # flat record keys: energy, health
    details: dict[str, Any]  # nested record keys: energy, health
    flags: list[Flag]


def _measured(backend: Backend, cell: CellConfig, device: Any) -> _Measured:
    """The measured iterations, with their energy and the device's health around them.
    Called after the model is loaded, so the memory check compares the worker's baseline +
    its model with what is in use; the simulator's energy comes from its power model."""
    watch = health.CellHealth(device.kind, cell.devices_per_cell, backend.simulated)
    watch.before()
    meter = None if backend.simulated else EnergyMeter(device.kind, cell.devices_per_cell)
    with meter if meter is not None else contextlib.nullcontext():
        its, activity = _iterations(backend, cell, device, meter)
    energy, energy_block = meter.result(its) if meter else simulated_result(backend, its)
    health_fields, flags, health_block = watch.after(meter.events() if meter else [])
    if shares_power_module(energy_block):
        flags = [*flags, Flag.SHARED_POWER_MODULE]
    details = {"energy": energy_block}
    if health_block is not None:
        details["health"] = health_block
    return _Measured(its, activity, {**energy, **health_fields}, details, flags)


_SIM_DEVICES: dict[tuple[str, str], Any] = {}


def _open(cell: CellConfig) -> Any:
    """The device of this process; the simulator stands in for the requested device (one
    per process and spec, like a real device: the loaded model's memory stays on it)."""
    if cell.backend.name == "sim":
        from workers.backends.sim import SimDevice

        key = (cell.device.name, cell.backend.sim.device_spec)
        if key not in _SIM_DEVICES:
            _SIM_DEVICES[key] = SimDevice(*key)
        return _SIM_DEVICES[key]
    return open_device(cell.device.name)


def quality_flags(metrics: dict[str, Any], cell: CellConfig, simulated: bool) -> list[Flag]:
    """The flags that the metrics alone decide."""
    flags = []
    if simulated:
        flags.append(Flag.SIMULATED)
    if metrics["generated_tokens"] < metrics["expected_tokens"]:
        flags.append(Flag.SHORT_OUTPUT)
    cv = metrics.get("e2e_cv")
    if cv is not None and cv > cell.bench.unstable_cv:
        flags.append(Flag.UNSTABLE)
    if metrics["measured_iterations"] < cell.bench.iterations or (
        metrics["measured_s"] < cell.bench.min_duration_s
    ):
        flags.append(Flag.TOO_BRIEF)
    return flags


def memory_fields(device: Any, report: BackendReport) -> dict[str, int | None]:
    if report.memory is not None:
        return dict(report.memory)
    mem = device.peak_memory()
    return {
        "peak_memory_allocated_bytes": mem["allocated"],
        "peak_memory_reserved_bytes": mem["reserved"],
        "peak_rss_bytes": mem["rss"],
        "peak_memory_bytes": mem["allocated"] if mem["allocated"] is not None else mem["rss"],
    }


def raw_values(its: list[IterationResult]) -> dict[str, list]:
    return {
        "e2e_s": [it.e2e_s for it in its],
        "ttft_s": [it.ttft_s for it in its],
        "generated_tokens": [it.generated_tokens for it in its],
        "step_times_s": [it.step_times_s for it in its],
    }


def _device_snapshot(device: Any, simulated: bool) -> dict[str, Any] | None:
    if simulated or device.kind not in ("cuda", "npu"):
        return None
    try:
        return snapshot(device.kind)
    except Exception:  # a snapshot must never fail a cell
        log.exception("device snapshot failed")
        return None


def _run(cell: CellConfig, device: Any, out: Outcome, repeat: int | None = None) -> None:
    """Load, measure and fill ``out`` (status ok); raises whatever the cell raised."""
    floor = _check_fits(cell, device)
    backend, reused, load_s = get_model(
        cell, device, lambda: backend_class(cell.backend.name)(cell, device)
    )
    backend.repeat = repeat
    info = backend.model_info()
    m = _measured(backend, cell, device)
    its, activity = m.its, m.activity
    metrics = cell_metrics(its, batch=cell.batch, seq=cell.seq, prompt_len=cell.prompt_len)
    report = backend.report()
    bounds, broken = bound_fields(metrics, cell, info, device.kind, out.fields["device_name"])
    out.fields.update(
        model_reused=reused,
        model_load_s=load_s,
        model_path=info.get("path", cell.model.path),
        dtype=info.get("dtype", cell.model.dtype),
        model_parameters=info.get("parameters"),
        **metrics,
        **memory_fields(device, report),
        **bounds,
        # the backend's own keys win (the simulator's bad cards set health keys)
        **{**m.fields, **report.fields},
        memory_floor_bytes=floor,
        host_others_cores=None if activity is None else round(activity.others_cores, 3),
    )
    out.flags = [*quality_flags(metrics, cell, backend.simulated), *report.flags, *m.flags]
    if broken:
        out.flags.append(Flag.ABOVE_BOUND)
    if not backend.simulated and host_busy(activity, cell, device.kind):
        out.flags.append(Flag.HOST_BUSY)
    out.details["raw"] = raw_values(its)
    out.details.update(m.details)
    # After the window, its metrics and its memory: the token checks (workers/quality/).
    checked = token_checks(backend, cell, info)
    out.fields.update(checked.fields)
    out.details["quality"] = checked.details
    out.flags += checked.flags
    if report.engine is not None:
        out.details["engine"] = report.engine
    smi = _device_snapshot(device, backend.simulated)
    if smi is not None:
        out.details["smi"] = smi
    out.status = Status.OK


class StaticCell:
    """One static cell on this process's device (see ``workers.run`` for the steps)."""

    failure_level = logging.INFO  # the sweep's driver reports a failed cell

    def __init__(self, cell: CellConfig, repeat: int | None = None) -> None:
        self.cell, self.repeat = cell, repeat
        self.device: Any = None

    def start(self, out: Outcome) -> None:
        """The record keys known before anything can fail."""
        var = VISIBLE_ENV.get(self.cell.device.name)
        out.fields.update(visible_devices=os.environ.get(var) if var else None)

    def run(self, out: Outcome) -> None:
        """Load, measure and fill ``out`` (status ok); raises whatever the cell raised."""
        cell = self.cell
        check_model_here(cell)
        self.device = device = _open(cell)
        out.fields.update(
            device=device.kind, device_name=device.name(), visible_devices=device.visible_devices()
        )
        if cell.backend.name != "sim":  # the simulator has no device tool: no serial
            out.fields.update(device_serial=device_serial(device.kind))
        log.info(
            "[%s] start b=%d s=%d p=%d", cell.model.name, cell.batch, cell.seq, cell.prompt_len
        )
        _run(cell, device, out, self.repeat)

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, CellOOM) or (self.device is not None and self.device.is_oom(exc))

    def after_failure(self, exc: BaseException, out: Outcome) -> None:
        """The models are dropped; a failed cell may leave the device in a bad state too."""
        if self.device is not None:
            try:
                self.device.empty_cache()
            except Exception:
                log.exception("emptying the device cache failed")

    def summary(self, out: Outcome) -> str:
        f, cell = out.fields, self.cell
        return (
            f"b={cell.batch} s={cell.seq}: {f['output_tokens_per_s'] or 0.0:.1f} output tok/s, "
            f"e2e p50 {f['e2e_s_p50'] or 0.0:.4f} s, ttft {f['ttft_s_mean'] or 0.0:.4f} s"
        )
