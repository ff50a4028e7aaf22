"""The measuring loop: warm-up and timed iterations of one cell, through one backend.

``measure(cell)`` always returns an :class:`~jobs.record.Outcome`; an exception inside the
cell becomes a `failed` (or `oom`) outcome with the error and the end of its traceback. Each
part returns its own piece (the metrics, the memory, the bounds, the backend's report) and
the outcome is assembled here, once; the record is built from it by
:func:`jobs.record.build_record`. Loaded models are kept in a per-process cache, so a
long-lived worker (one Ray actor per device) loads each model once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from jobs.config import CellConfig
from jobs.identity import model_key
from jobs.record import Flag, Outcome, Status
from workers import health
from workers.base import Backend, BackendReport, CellOOM, IterationResult, backend_class
from workers.bounding import bound_fields
from workers.devices import VISIBLE_ENV, Device, open_device
from workers.energy import EnergyMeter, shares_power_module, simulated_result
from workers.env import environment, utc_now
from workers.host import HostLoad, LoadWindow, check_fits, check_model_here, host_busy
from workers.metrics import cell_metrics
from workers.models import model_config_json
from workers.smi import snapshot

log = logging.getLogger(__name__)

# One loaded backend per process, keyed by what makes a model load different.
_LOADED: dict[tuple, Backend] = {}
LOAD_COUNT: dict[str, int] = {"loads": 0}


def get_backend(cell: CellConfig, device: Device) -> tuple[Backend, bool, float]:
    """(backend, reused, load seconds). Evicts a different model first: one model per device."""
    key = (model_key(cell), device.kind)
    if key in _LOADED:
        return _LOADED[key], True, 0.0
    drop_models()
    backend = backend_class("serve" if cell.serving else cell.backend.name)(cell, device)
    t0 = time.perf_counter()
    with health.loading(device.kind, backend.simulated):
        backend.load()
    load_s = time.perf_counter() - t0
    LOAD_COUNT["loads"] += 1
    _LOADED[key] = backend
    log.info("[%s] loaded %s in %.2f s", cell.model.name, backend.name, load_s)
    return backend, False, load_s


def drop_models() -> None:
    for backend in _LOADED.values():
        try:
            backend.close()
        except Exception:  # closing must not hide the original problem
            log.exception("closing a backend failed")
    _LOADED.clear()


def _iterations(
    backend: Backend, cell: CellConfig, device: Any, meter: EnergyMeter | None = None
) -> tuple[list[IterationResult], LoadWindow | None]:
    """Warm-up, then the measured window (and the host's load during it); ``meter`` samples
    energy during the measured iterations only."""
    backend.prepare(cell)
    for _ in range(cell.bench.warmup):
        backend.run_iteration()
    device.reset_peak_memory()
    its: list[IterationResult] = []
    load = HostLoad()
    b = cell.bench
    with meter.window() if meter is not None else contextlib.nullcontext():
        load.start()
        t0 = time.perf_counter()
        while len(its) < b.iterations or (
            time.perf_counter() - t0 < b.min_duration_s and len(its) < b.max_iterations
        ):
            if meter is not None:
                meter.iteration()
            its.append(backend.run_iteration())
        window = load.stop()
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
    loaded = (model_key(cell), device.kind) in _LOADED
    return check_fits(cell, config, dtype, loaded, device.available_memory())


@dataclass
class _Measured:
    its: list[IterationResult]
    load: LoadWindow | None  # the host's load during the window
    fields: dict[str, Any]  # flat record keys: energy, health
    details: dict[str, Any]  # nested record keys: energy, health
    flags: list[Flag]


def _measured(backend: Backend, cell: CellConfig, device: Any) -> _Measured:
    """The measured iterations, with their energy and the device's health around them.
    Called after the model is loaded, so the memory check compares the worker's baseline +
    its model with what is in use; the simulator's energy comes from its power model."""
    watch = health.CellHealth(device.kind, cell.chips, backend.simulated)
    watch.before()
    meter = None if backend.simulated else EnergyMeter(device.kind, cell.chips)
    with meter if meter is not None else contextlib.nullcontext():
        its, load = _iterations(backend, cell, device, meter)
    energy, energy_block = meter.result(its) if meter else simulated_result(backend, its)
    health_fields, flags, health_block = watch.after(meter.events() if meter else [])
    if shares_power_module(energy_block):
        flags = [*flags, Flag.SHARED_POWER_MODULE]
    details = {"energy": energy_block}
    if health_block is not None:
        details["health"] = health_block
    return _Measured(its, load, {**energy, **health_fields}, details, flags)


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
    backend, reused, load_s = get_backend(cell, device)
    backend.repeat = repeat
    info = backend.model_info()
    m = _measured(backend, cell, device)
    its, load = m.its, m.load
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
        **m.fields,
        **report.fields,
        memory_floor_bytes=floor,
        host_others_cores=None if load is None else round(load.others_cores, 3),
    )
    out.flags = [*quality_flags(metrics, cell, backend.simulated), *report.flags, *m.flags]
    if broken:
        out.flags.append(Flag.ABOVE_BOUND)
    if not backend.simulated and host_busy(load, cell, device.kind):
        out.flags.append(Flag.HOST_BUSY)
    out.details["raw"] = raw_values(its)
    out.details.update(m.details)
    if report.engine is not None:
        out.details["engine"] = report.engine
    smi = _device_snapshot(device, backend.simulated)
    if smi is not None:
        out.details["smi"] = smi
    out.status = Status.OK


def measure(cell: CellConfig, repeat: int | None = None) -> Outcome:
    """Measure one cell on this process's device. Never raises for a problem of the cell."""
    if cell.serving:  # requests to a server: the serving loop (workers/serving/measure.py)
        from workers.serving.measure import measure_serving

        return measure_serving(cell)
    env = environment()
    visible_var = VISIBLE_ENV.get(cell.device.name)
    out = Outcome(env=env, started_at=utc_now())
    out.fields.update(
        node=env["host"], visible_devices=os.environ.get(visible_var) if visible_var else None
    )
    device = None
    try:
        check_model_here(cell)
        device = _open(cell)
        out.fields.update(
            device=device.kind, device_name=device.name(), visible_devices=device.visible_devices()
        )
        log.info(
            "[%s] start b=%d s=%d p=%d", cell.model.name, cell.batch, cell.seq, cell.prompt_len
        )
        _run(cell, device, out, repeat)
    except Exception as exc:  # every failure becomes a record; the sweep goes on
        oom = isinstance(exc, CellOOM) or (device is not None and device.is_oom(exc))
        failed = Outcome.failure(exc, Status.OOM if oom else Status.FAILED)
        out.status, out.error = failed.status, failed.error
        log.info("[%s] %s: %s", cell.model.name, out.status.value, exc)  # the driver says it
        # A failed cell may leave the device in a bad state: drop the model, start clean.
        drop_models()
        if device is not None:
            try:
                device.empty_cache()
            except Exception:
                log.exception("emptying the device cache failed")
    out.finished_at = utc_now()
    if out.status == Status.OK:
        f = out.fields
        log.info(
            "[%s] ok b=%d s=%d: %.1f output tok/s, e2e p50 %.4f s, ttft %.4f s",
            cell.model.name, cell.batch, cell.seq, f["output_tokens_per_s"] or 0.0,
            f["e2e_s_p50"] or 0.0, f["ttft_s_mean"] or 0.0,
        )  # fmt: skip
    return out


def run_cell(cell: CellConfig) -> dict[str, Any]:
    """Measure one cell and return its record (for notebooks, tests and single runs)."""
    from jobs.record import build_record

    return build_record(cell, measure(cell))
