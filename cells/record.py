"""The result record: one flat, versioned JSON object per cell (schema in the README)."""

from __future__ import annotations

import traceback
from dataclasses import asdict
from typing import Any

from cells.config import CellConfig
from cells.identity import cell_dir_name, cell_id

SCHEMA_VERSION = 1
RECORD_FILE = "record.json"

STATUSES = ("ok", "failed", "oom")

# Flat top-level keys that tables and other tools rely on (always present, maybe null).
FLAT_KEYS = (
    "schema_version", "cell_id", "cell_dir", "status", "simulated",
    "batch", "seq", "prompt_len", "backend", "model", "model_path", "dtype", "load_format",
    "device", "device_name", "visible_devices", "node", "ray_node_id",
    "output_tokens_per_s", "total_tokens_per_s", "samples_per_s",
    "e2e_s_mean", "e2e_s_p50", "e2e_s_p90", "e2e_s_p99", "e2e_s_stdev", "e2e_s_min", "e2e_s_max",
    "e2e_cv",
    "ttft_s_mean", "ttft_s_p50", "ttft_s_p99",
    "tpot_s_mean", "tpot_s_p50", "tpot_s_p99",
    "itl_s_p50", "itl_s_p99",
    "generated_tokens", "expected_tokens",
    "peak_memory_bytes", "peak_memory_allocated_bytes", "peak_memory_reserved_bytes",
    "peak_rss_bytes",
    "warmup_iterations", "measured_iterations", "measured_s",
    "model_load_s", "model_reused",
    "bound_output_tokens_per_s", "bound_ttft_s", "bound_tpot_s", "bound_fraction", "bound_source",
    "flags", "error", "attempts", "started_at", "finished_at",
)  # fmt: skip


def base_record(cell: CellConfig) -> dict[str, Any]:
    """A record with the cell's inputs filled in and every metric null."""
    rec: dict[str, Any] = dict.fromkeys(FLAT_KEYS)
    rec.update(
        schema_version=SCHEMA_VERSION,
        cell_id=cell_id(cell),
        cell_dir=cell_dir_name(cell),
        status="failed",
        simulated=cell.backend.name == "sim",
        batch=cell.batch,
        seq=cell.seq,
        prompt_len=cell.prompt_len,
        backend=cell.backend.name,
        model=cell.model.name,
        model_path=cell.model.path,
        dtype=cell.model.dtype,
        load_format=cell.model.load_format,
        device=cell.device.name,
        expected_tokens=cell.batch * cell.seq,
        warmup_iterations=cell.bench.warmup,
        flags=[],
        attempts=1,
        config=asdict(cell),
    )
    return rec


def error_info(exc: BaseException, limit: int = 15) -> dict[str, str]:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(tb).splitlines()[-limit:]
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "\n".join(tail)}


def failed_record(
    cell: CellConfig, status: str, error: dict[str, str], **extra: Any
) -> dict[str, Any]:
    rec = base_record(cell)
    rec.update(status=status, error=error, **extra)
    return rec
