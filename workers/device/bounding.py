"""The roofline bound (bounds/) of a measured cell, on the device it ran on, and which bound
explains each phase's measured time (bounds/regime.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bounds.regime import REGIME_KEYS, phase_bounds, regime_fields
from bounds.roofline import ModelShape, bounds_for, bytes_per_element, violations
from bounds.specs import DeviceSpec, lookup
from jobs.config import CellConfig
from workers.device.bandwidth import measured_spec

log = logging.getLogger(__name__)

BOUND_KEYS = ("bound_output_tokens_per_s", "bound_ttft_s", "bound_tpot_s", "bound_fraction")


def _resolve_spec(device_kind: str, device_name: str, working_set: int) -> DeviceSpec:
    spec = lookup(device_name)
    if spec is not None:
        return spec
    return measured_spec(device_kind, working_set)


def bound_fields(
    metrics: Mapping[str, Any],
    cell: CellConfig,
    model_info: Mapping[str, Any],
    device_kind: str,
    device_name: str,
) -> tuple[dict[str, Any], list[str]]:
    """(the bound_* fields of a measured cell, what beat the bound by more than TOLERANCE).

    Never raises: a model or device without usable figures gets null bounds and the reason
    in `bound_source`; a non-empty second item means the record is flagged `above_bound`."""
    out: dict[str, Any] = dict.fromkeys((*BOUND_KEYS, *REGIME_KEYS))
    n = cell.devices_per_cell
    try:
        config = model_info.get("config") or {}
        dtype = str(model_info.get("dtype") or "float16")
        shape = ModelShape.from_config(config)
        working_set = shape.forward_parameters * bytes_per_element(dtype)
        spec = _resolve_spec(device_kind, device_name, working_set)
        b = bounds_for(config, dtype, spec, cell.batch, cell.seq, cell.prompt_len, n)
        phases = phase_bounds(config, dtype, spec, cell.batch, cell.seq, cell.prompt_len, n)
    except Exception as exc:  # a bound is a check, never a reason to lose a measurement
        out["bound_source"] = f"n/a: {type(exc).__name__}: {exc}"
        log.warning("no roofline bound: %s", exc)
        return out, []
    times = f" x{n}" if n > 1 else ""
    out["bound_source"] = f"{spec.name}{times}: {spec.source}"
    out["bound_output_tokens_per_s"] = b.output_tokens_per_s
    out["bound_ttft_s"] = b.ttft_s
    out["bound_tpot_s"] = b.tpot_s
    if metrics.get("output_tokens_per_s"):
        out["bound_fraction"] = metrics["output_tokens_per_s"] / b.output_tokens_per_s
    out.update(regime_fields(metrics, phases))
    broken = violations(metrics, b)
    if broken:
        log.warning("above_bound: %s (bound: %s)", "; ".join(broken), out["bound_source"])
    return out, broken
