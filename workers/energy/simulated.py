"""A simulated cell's energy: from the simulator's power model, not sampled (there is no device
to read), under the same record keys as a measured one (workers/energy/meter.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.base import IterationResult
from workers.energy.integrate import Integral, Reason
from workers.energy.meter import energy_fields, missing_fields


def simulated_result(backend: Any, its: Sequence[IterationResult]) -> tuple[dict, dict]:
    """A simulated backend's energy from its power model (``sim_power() -> (prefill W,
    decode W)`` or None where the device spec has no power figures)."""
    power = backend.sim_power() if callable(getattr(backend, "sim_power", None)) else None
    if power is None:
        why = "the simulated device spec has no tdp_w / idle_w"
        return missing_fields("simulated", why, Reason.SOURCE_MISSING)
    return simulated_fields(its, *power, model=getattr(backend, "sim_power_model", ""))


def simulated_fields(
    its: Sequence[IterationResult], prefill_w: float, decode_w: float, model: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Energy of simulated iterations from the simulator's power model (no sampling)."""
    prefill = sum((it.ttft_s or 0.0) * prefill_w for it in its)
    decode = sum((it.e2e_s - (it.ttft_s or 0.0)) * decode_w for it in its)
    seconds = sum(it.e2e_s for it in its)
    got = Integral(
        energy_j=prefill + decode,
        power_w_mean=(prefill + decode) / seconds if seconds else None,
        power_w_peak=max(prefill_w, decode_w),
        samples=len(its),
        reasons=[],
        wraps=0,
        traces=[],
    )
    tokens = sum(it.generated_tokens for it in its)
    split = {"prefill_energy_j": prefill, "decode_energy_j": decode}
    block = {"source": "simulated", "model": model, "prefill_w": prefill_w, "decode_w": decode_w}
    return energy_fields("simulated", got, tokens, split), block
