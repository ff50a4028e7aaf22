"""The measuring loop: warm-up and timed iterations of one cell, through one backend.

``run_cell`` always returns a record; an exception inside the cell becomes a `failed` (or
`oom`) record with the error and the end of its traceback. Loaded models are kept in a
per-process cache, so a long-lived worker (one Ray actor per device) loads each model once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from cells.config import CellConfig
from cells.identity import model_key
from cells.record import base_record, error_info
from workers.base import Backend, CellOOM, backend_class
from workers.bounding import apply_bounds
from workers.devices import VISIBLE_ENV, Device, open_device
from workers.env import environment, utc_now
from workers.metrics import cell_metrics
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
    backend = backend_class(cell.backend.name)(cell, device)
    t0 = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t0
    LOAD_COUNT["loads"] += 1
    _LOADED[key] = backend
    log.info("[%s] loaded %s in %.2f s", cell.model.name, cell.backend.name, load_s)
    return backend, False, load_s


def drop_models() -> None:
    for backend in _LOADED.values():
        try:
            backend.close()
        except Exception:  # closing must not hide the original problem
            log.exception("closing a backend failed")
    _LOADED.clear()


def _measure(backend: Backend, cell: CellConfig, device: Device) -> list:
    backend.prepare(cell)
    for _ in range(cell.bench.warmup):
        backend.run_iteration()
    device.reset_peak_memory()
    its = []
    t0 = time.perf_counter()
    b = cell.bench
    while len(its) < b.iterations or (
        time.perf_counter() - t0 < b.min_duration_s and len(its) < b.max_iterations
    ):
        its.append(backend.run_iteration())
    return its


def _open(cell: CellConfig) -> Any:
    """The device of this process; the simulator stands in for the requested device."""
    if cell.backend.name == "sim":
        from workers.backends.sim import SimDevice

        return SimDevice(cell.device.name, cell.backend.sim.device_spec)
    return open_device(cell.device.name)


def _flags(rec: dict[str, Any], cell: CellConfig, simulated: bool) -> list[str]:
    flags = []
    if simulated:
        flags.append("simulated")
    if rec["generated_tokens"] < rec["expected_tokens"]:
        flags.append("short_output")
    cv = rec.get("e2e_cv")
    if cv is not None and cv > cell.bench.unstable_cv:
        flags.append("unstable")
    if rec["measured_iterations"] < cell.bench.iterations or (
        rec["measured_s"] < cell.bench.min_duration_s
    ):
        flags.append("too_brief")
    return flags


def run_cell(cell: CellConfig) -> dict[str, Any]:
    """Measure one cell on this process's device and return its record."""
    rec = base_record(cell)
    rec["started_at"] = utc_now()
    rec["env"] = environment()
    rec["node"] = rec["env"]["host"]
    device = None
    visible_var = VISIBLE_ENV.get(cell.device.name)
    rec["visible_devices"] = os.environ.get(visible_var) if visible_var else None
    try:
        device = _open(cell)
        rec["device"] = device.kind
        rec["device_name"] = device.name()
        rec["visible_devices"] = device.visible_devices()
        log.info(
            "[%s] start b=%d s=%d p=%d", rec["cell_dir"], cell.batch, cell.seq, cell.prompt_len
        )
        backend, reused, load_s = get_backend(cell, device)
        rec["model_reused"] = reused
        rec["model_load_s"] = load_s
        info = backend.model_info()
        rec["model_path"] = info.get("path", rec["model_path"])
        rec["dtype"] = info.get("dtype", rec["dtype"])
        rec["model_parameters"] = info.get("parameters")
        its = _measure(backend, cell, device)
        rec.update(cell_metrics(its, batch=cell.batch, seq=cell.seq, prompt_len=cell.prompt_len))
        mem = device.peak_memory()
        rec["peak_memory_allocated_bytes"] = mem["allocated"]
        rec["peak_memory_reserved_bytes"] = mem["reserved"]
        rec["peak_rss_bytes"] = mem["rss"]
        rec["peak_memory_bytes"] = mem["allocated"] if mem["allocated"] is not None else mem["rss"]
        rec["raw"] = {
            "e2e_s": [it.e2e_s for it in its],
            "ttft_s": [it.ttft_s for it in its],
            "generated_tokens": [it.generated_tokens for it in its],
            "step_times_s": [it.step_times_s for it in its],
        }
        rec["flags"] = _flags(rec, cell, backend.simulated)
        rec["status"] = "ok"
        apply_bounds(rec, cell, info, device.kind, rec["device_name"])
        if not backend.simulated and device.kind in ("cuda", "npu"):
            try:
                rec["smi"] = snapshot(device.kind)
            except Exception:  # a snapshot must never fail a cell
                log.exception("[%s] device snapshot failed", rec["cell_dir"])
        extra = getattr(backend, "record_extras", None)
        if callable(extra):
            rec.update(extra(rec))
    except Exception as exc:  # every failure becomes a record; the sweep goes on
        oom = isinstance(exc, CellOOM) or (device is not None and device.is_oom(exc))
        rec["status"] = "oom" if oom else "failed"
        rec["error"] = error_info(exc)
        log.error("[%s] %s: %s", rec["cell_dir"], rec["status"], exc)
        # A failed cell may leave the device in a bad state: drop the model, start clean.
        drop_models()
        if device is not None:
            try:
                device.empty_cache()
            except Exception:
                log.exception("emptying the device cache failed")
    rec["finished_at"] = utc_now()
    if rec["status"] == "ok":
        log.info(
            "[%s] ok: %.1f output tok/s, e2e p50 %.4f s, ttft %.4f s",
            rec["cell_dir"],
            rec["output_tokens_per_s"] or 0.0,
            rec["e2e_s_p50"] or 0.0,
            rec["ttft_s_mean"] or 0.0,
        )
    return rec
