"""Applying the roofline bound (bounds/) to a measured cell, on the device it ran on."""

from __future__ import annotations

import logging

from bounds.roofline import ModelShape, bounds_for, bytes_per_element, violations
from bounds.specs import DeviceSpec, lookup
from cells.config import CellConfig
from workers.bandwidth import measured_spec

log = logging.getLogger(__name__)


def _resolve_spec(device_kind: str, device_name: str, working_set: int) -> DeviceSpec:
    spec = lookup(device_name)
    if spec is not None:
        return spec
    return measured_spec(device_kind, working_set)


def apply_bounds(
    rec: dict, cell: CellConfig, model_info: dict, device_kind: str, device_name: str
) -> None:
    """Set the bound_* fields of an ok record and flag `above_bound` when a measured number
    is faster than physics allows (beyond TOLERANCE). Never raises: a record whose model or
    device has no usable figures gets null bounds and the reason in `bound_source`."""
    for key in ("bound_output_tokens_per_s", "bound_ttft_s", "bound_tpot_s", "bound_fraction"):
        rec[key] = None
    n = cell.chips
    try:
        config = model_info.get("config") or {}
        dtype = str(model_info.get("dtype") or "float16")
        shape = ModelShape.from_config(config)
        working_set = shape.forward_parameters * bytes_per_element(dtype)
        spec = _resolve_spec(device_kind, device_name, working_set)
        b = bounds_for(config, dtype, spec, cell.batch, cell.seq, cell.prompt_len, n)
    except Exception as exc:  # a bound is a check, never a reason to lose a measurement
        rec["bound_source"] = f"n/a: {type(exc).__name__}: {exc}"
        log.warning("[%s] no roofline bound: %s", rec.get("cell_dir"), exc)
        return
    times = f" x{n}" if n > 1 else ""
    rec["bound_source"] = f"{spec.name}{times}: {spec.source}"
    rec["bound_output_tokens_per_s"] = b.output_tokens_per_s
    rec["bound_ttft_s"] = b.ttft_s
    rec["bound_tpot_s"] = b.tpot_s
    if rec.get("output_tokens_per_s"):
        rec["bound_fraction"] = rec["output_tokens_per_s"] / b.output_tokens_per_s
    broken = violations(rec, b)
    if broken:
        flags = rec.setdefault("flags", [])
        if "above_bound" not in flags:
            flags.append("above_bound")
        log.warning(
            "[%s] above_bound: %s (bound: %s)", rec.get("cell_dir"), "; ".join(broken),
            rec["bound_source"],
        )  # fmt: skip
