"""Devices without a spec: a copy benchmark on the device itself stands in for the unknown peak."""

from __future__ import annotations

import logging
import time

from bounds.specs import GB, DeviceSpec

log = logging.getLogger(__name__)

#: The measured copy bandwidth is multiplied by this to stand in for the unknown peak.
#: A copy kernel reaches well below peak (STREAM copy: ~60-90% on GPUs; on x86 CPUs a plain
#: copy also pays a read-for-ownership of the destination that is not counted, and one
#: process rarely saturates every memory channel), so the measured figure is a LOWER estimate
#: of the peak. Dividing a time by it could flag honest results; x2 covers a copy that reaches
#: only half the peak and keeps the bound an upper bound. Unknown devices get no FLOP/s figure
#: (a matmul benchmark would depend on dtype and shape, and a too-low figure would make the
#: bound too strict): their bounds are bandwidth-only, which is looser, never wrong.
MEASURED_SAFETY_FACTOR = 2.0

_MEASURED: dict[tuple[str, int], float] = {}


def _bucket(nbytes: int) -> int:
    """Copy working-set size: the model's per-step bytes rounded up to a power of two,
    between 4 MiB and 512 MiB, so a model that fits in a cache is compared with the
    bandwidth of that cache, not of DRAM."""
    size = 4 * 2**20
    while size < nbytes and size < 512 * 2**20:
        size *= 2
    return size


def measure_bandwidth(kind: str, working_set_bytes: int = 512 * 2**20) -> float:
    """Best copy bandwidth (bytes/s, counting read + write) on device `kind`, measured once
    per process and working-set size (~0.1-0.3 s). A lower estimate of the peak."""
    size = _bucket(working_set_bytes)
    cache_key = (kind, size)
    if cache_key not in _MEASURED:
        _MEASURED[cache_key] = _copy_bandwidth(kind, size)
        log.info(
            "measured %s copy bandwidth %.1f GB/s (working set %d MiB)",
            kind,
            _MEASURED[cache_key] / GB,
            size // 2**20,
        )
    return _MEASURED[cache_key]


def _copy_bandwidth(kind: str, working_set: int, trials: int = 8) -> float:
    import torch

    dev = "cpu" if kind == "cpu" else f"{kind}:0"
    mod = None if kind == "cpu" else getattr(torch, kind)
    n = working_set // 2  # source + destination = the working set
    src = torch.ones(n, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    # On the CPU a small copy is faster on one thread (no fork/join cost), a large one on
    # all threads: take the best of both.
    thread_counts = [torch.get_num_threads(), 1] if kind == "cpu" else [None]
    best = 0.0
    saved = torch.get_num_threads()
    try:
        for threads in thread_counts:
            if threads is not None:
                torch.set_num_threads(threads)
            dst.copy_(src)  # warm-up: first touch, kernel load
            for _ in range(trials):
                if mod is not None:
                    mod.synchronize()
                t0 = time.perf_counter()
                dst.copy_(src)
                if mod is not None:
                    mod.synchronize()
                dt = time.perf_counter() - t0
                if dt > 0:
                    best = max(best, 2 * n / dt)
    finally:
        torch.set_num_threads(saved)
    return best


def measured_spec(kind: str, working_set_bytes: int) -> DeviceSpec:
    """A stand-in spec for a device without one: measured copy bandwidth x the safety factor,
    FLOP/s unknown (bandwidth-only bounds)."""
    measured = measure_bandwidth(kind, working_set_bytes)
    return DeviceSpec(
        key=f"measured_{kind}",
        name=f"{kind} (measured)",
        peak_bandwidth_bytes_per_s=measured * MEASURED_SAFETY_FACTOR,
        peak_flops_per_s=None,
        memory_bytes=None,
        source=f"measured copy bandwidth {measured / GB:.1f} GB/s x{MEASURED_SAFETY_FACTOR:g}",
        note="Lower estimate of the peak times a safety factor; bandwidth-only bound.",
    )
