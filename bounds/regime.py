"""Bottleneck attribution: which bound explains a measured phase time (docs/trust.md).

The roofline (bounds/roofline.py) takes, for every forward pass, the larger of two times: the
bytes it must move over the peak bandwidth (the memory bound) and the FLOPs it must do over the
peak FLOP/s (the compute bound). Here both are kept, per phase:

  prefill  memory_s  = (W + batch*prompt_len*kv) / bandwidth
           compute_s = batch * prefill_flops(prompt_len) / FLOP/s
  decode   memory_s  = mean over steps k = 1..seq-1 of (W + batch*(prompt_len+k)*kv) / bandwidth
           compute_s = mean over the same steps of batch * token_flops(prompt_len+k) / FLOP/s

and set against the measured time of the phase: TTFT (``ttft_s_mean``) for prefill, the mean
decode step (``tpot_s_mean``) for decode. ``fraction_memory = memory_s / measured`` and
``fraction_compute = compute_s / measured`` say how much of the measured time each bound
explains (1.0: the phase runs at that roofline). The regime of a phase:

  memory_bound    the memory fraction is the larger one and at least OVERHEAD_BELOW
  compute_bound   the compute fraction is the larger one and at least OVERHEAD_BELOW
  overhead_bound  both fractions are below OVERHEAD_BELOW: more than half the measured time is
                  neither moving bytes nor doing FLOPs at peak (launches, Python, host, sync,
                  kernels far from peak)

A spec without FLOP/s (a measured CPU spec) has no compute bound: its fraction is null and the
regime is decided by the memory fraction alone. A phase without a measured time (no TTFT from
the backend, seq = 1 for decode) has null fields.

Pure arithmetic: no torch, no project imports but bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bounds.roofline import cell_passes
from bounds.specs import DeviceSpec

#: Below this fraction of the measured time for both bounds, a phase is overhead_bound.
OVERHEAD_BELOW = 0.5

MEMORY_BOUND, COMPUTE_BOUND, OVERHEAD_BOUND = "memory_bound", "compute_bound", "overhead_bound"
REGIMES = (MEMORY_BOUND, COMPUTE_BOUND, OVERHEAD_BOUND)
PHASES = ("prefill", "decode")

#: The flat record keys (jobs/record.py FLAT_KEYS), per phase.
REGIME_KEYS = tuple(
    f"{phase}_{what}"
    for phase in PHASES
    for what in ("regime", "bound_fraction_memory", "bound_fraction_compute")
)

#: The measured time each phase is set against.
MEASURED_KEYS = {"prefill": "ttft_s_mean", "decode": "tpot_s_mean"}


@dataclass(frozen=True)
class PhaseBounds:
    """The memory and compute bounds of one phase (seconds; compute None: no FLOP/s)."""

    memory_s: float
    compute_s: float | None


@dataclass(frozen=True)
class Attribution:
    regime: str
    fraction_memory: float
    fraction_compute: float | None


def phase_bounds(
    model_config: Mapping[str, Any],
    dtype: str,
    spec: DeviceSpec,
    batch: int,
    seq: int,
    prompt_len: int,
    devices: int = 1,
) -> dict[str, PhaseBounds | None]:
    """{"prefill": ..., "decode": ...}; decode is None for seq = 1 (no decode step)."""
    p = cell_passes(model_config, dtype, spec, batch, seq, prompt_len, devices)
    bw, peak = p.bandwidth, p.peak_flops
    nbytes, flops = p.prefill
    prefill = PhaseBounds(nbytes / bw, flops / peak if peak else None)
    if seq < 2:
        return {"prefill": prefill, "decode": None}
    memory = sum(b / bw for b, _ in p.decode) / (seq - 1)
    compute = sum(f / peak for _, f in p.decode) / (seq - 1) if peak else None
    return {"prefill": prefill, "decode": PhaseBounds(memory, compute)}


def attribute(measured_s: float | None, bounds: PhaseBounds | None) -> Attribution | None:
    """The regime of a phase measured at ``measured_s`` (rule in the module docstring)."""
    if bounds is None or not measured_s or measured_s <= 0:
        return None
    mem = bounds.memory_s / measured_s
    comp = bounds.compute_s / measured_s if bounds.compute_s is not None else None
    top, regime = (comp, COMPUTE_BOUND) if comp is not None and comp > mem else (mem, MEMORY_BOUND)
    if top < OVERHEAD_BELOW:
        regime = OVERHEAD_BOUND
    return Attribution(regime, mem, comp)


def regime_fields(
    measured: Mapping[str, Any], bounds: Mapping[str, PhaseBounds | None]
) -> dict[str, Any]:
    """The REGIME_KEYS of a record from its measured times and its phase bounds."""
    out: dict[str, Any] = dict.fromkeys(REGIME_KEYS)
    for phase in PHASES:
        got = attribute(measured.get(MEASURED_KEYS[phase]), bounds.get(phase))
        if got is None:
            continue
        out[f"{phase}_regime"] = got.regime
        out[f"{phase}_bound_fraction_memory"] = got.fraction_memory
        out[f"{phase}_bound_fraction_compute"] = got.fraction_compute
    return out
