"""What a record is: one flat, versioned JSON object per cell (schema in the README).

A worker measures a cell and returns an :class:`Outcome` (what happened, no identity);
:func:`build_record` is the one place that turns a cell and its outcome into a record, on
whichever process writes it (the sweep's driver, or the process of a single run).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from jobs.config import CellConfig
from jobs.identity import PlannedCell, engine_name
from jobs.quality import QUALITY_KEYS
from jobs.values import plain

SCHEMA_VERSION = 1
RECORD_FILE = "record.json"


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"
    OOM = "oom"


class Flag(str, Enum):
    """Everything a record can be flagged with; FLAG_MEANINGS says what each means."""

    ABOVE_BOUND = "above_bound"
    UNSTABLE = "unstable"
    SHORT_OUTPUT = "short_output"
    TOO_BRIEF = "too_brief"
    SIMULATED = "simulated"
    WORKER_LOST = "worker_lost"
    HOST_BUSY = "host_busy"
    DIRTY_START = "dirty_start"
    THROTTLED = "throttled"
    USAGE_MISMATCH = "usage_mismatch"
    TOO_MANY_ERRORS = "too_many_errors"
    BATCH_SPLIT = "batch_split"
    DIVERGENT = "divergent"
    ACCURACY_LOW = "accuracy_low"
    CLIENT_SATURATED = "client_saturated"
    CLIENT_SERVER_DISAGREE = "client_server_disagree"
    SHARED_POWER_MODULE = "shared_power_module"
    TRACE_LATE = "trace_late"


FLAG_MEANINGS: dict[str, str] = {
    Flag.ABOVE_BOUND: "faster than the hardware bound allows; the number cannot be right",
    Flag.UNSTABLE: "E2E coefficient of variation above bench.unstable_cv",
    Flag.SHORT_OUTPUT: "fewer tokens generated than batch x seq (serving: than requested)",
    Flag.TOO_BRIEF: "fewer iterations or a shorter window than the bench asked for",
    Flag.SIMULATED: "produced by the simulator, not measured",
    Flag.WORKER_LOST: "the worker process died (killed, crashed, node lost) and retries ran out",
    Flag.HOST_BUSY: "other processes used more of the host than the cell left them while measuring",
    Flag.DIRTY_START: "the cell started on device memory an earlier cell or process left behind",
    Flag.THROTTLED: "the device throttled (clock-event reasons, or an unhealthy npu) in the window",
    Flag.USAGE_MISMATCH: "the server's reported completion tokens differ from the client's count",
    Flag.TOO_MANY_ERRORS: "more failed requests than workload.max_failed_fraction allows",
    Flag.BATCH_SPLIT: "the engine could not run the batch as one batch (its max running requests, "
    "KV pool or prefill budget); record.engine.batch_split says which",
    Flag.DIVERGENT: "its greedy tokens of the check prompts agree with the reference cell's "
    "(same weights) less than its dtype allows (docs/quality.md); set by the sweep's outputs",
    Flag.ACCURACY_LOW: "its task check scored below accuracy.min",
    Flag.CLIENT_SATURATED: "the serving client could not keep up (event-loop lag p99 over 5 ms or "
    "about one core busy): its latencies include its own delay",
    Flag.TRACE_LATE: "a trace was replayed late: the client's p99 of send time - the trace's "
    "scheduled time (timestamp / workload.trace.speed) was over 0.05 s",
    Flag.CLIENT_SERVER_DISAGREE: "the client's TTFT mean and the server's own (its /metrics) "
    "differ by more than the client's overhead plus 10%",
    Flag.SHARED_POWER_MODULE: "the cell holds part of a power module read as one figure (Atlas "
    "A3: two dies); its energy is the module's times its share of the dies, an estimate "
    "(record.energy.power_modules)",
}


class EnergyReason(str, Enum):
    """Why a record's energy figure is not valid (``energy_invalid_reasons``; docs/energy.md)."""

    SOURCE_MISSING = "source_missing"
    SAMPLER_ERROR = "sampler_error"
    TOO_FEW_SAMPLES = "too_few_samples"
    WINDOW_SHORTER_THAN_PERIOD = "window_shorter_than_period"
    SAMPLE_GAP = "sample_gap"
    COUNTER_RESET = "counter_reset"
    COUNTER_WRAP = "counter_wrap"
    NOT_MEASURED = "not_measured"


ENERGY_REASON_MEANINGS: dict[str, str] = {
    EnergyReason.SOURCE_MISSING: "no energy or power source is readable for this device",
    EnergyReason.SAMPLER_ERROR: "the source failed to open or the sampler did not stop cleanly",
    EnergyReason.TOO_FEW_SAMPLES: "too few good readings inside the measured window",
    EnergyReason.WINDOW_SHORTER_THAN_PERIOD: "the window is too short for the source's update "
    "period",
    EnergyReason.SAMPLE_GAP: "readings missing for a stretch of the window (failed or late reads)",
    EnergyReason.COUNTER_RESET: "the energy counter went backwards (driver reload or reset)",
    EnergyReason.COUNTER_WRAP: "the counter may have wrapped more than once between two reads",
    EnergyReason.NOT_MEASURED: "energy is not measured for this kind of cell (a serving cell: "
    "no sampler runs around the load of a server)",
}

# Flat top-level keys that tables and other tools rely on (always present, maybe null).
FLAT_KEYS = (
    "schema_version", "cell_id", "cell_dir", "status", "simulated",
    "batch", "seq", "prompt_len", "backend", "model", "model_path", "dtype", "load_format",
    "device", "device_name", "visible_devices", "devices_per_cell", "node", "ray_node_id",
    "ray_cluster", "node_index", "device_serial", "fleet_of",
    "output_tokens_per_s", "total_tokens_per_s", "samples_per_s",
    "output_tokens_per_j", "energy_j_per_output_token", "energy_valid",
    "e2e_s_mean", "e2e_s_p50", "e2e_s_p90", "e2e_s_p99", "e2e_s_stdev", "e2e_s_min", "e2e_s_max",
    "e2e_cv",
    "ttft_s_mean", "ttft_s_p50", "ttft_s_p99",
    "tpot_s_mean", "tpot_s_p50", "tpot_s_p99",
    "itl_s_p50", "itl_s_p99",
    "generated_tokens", "expected_tokens",
    "peak_memory_bytes", "peak_memory_allocated_bytes", "peak_memory_reserved_bytes",
    "peak_rss_bytes",
    "warmup_iterations", "measured_iterations", "measured_s",
    "model_load_s", "model_reused", "model_parameters", "memory_floor_bytes", "host_others_cores",
    "bound_output_tokens_per_s", "bound_ttft_s", "bound_tpot_s", "bound_fraction", "bound_source",
    "prefill_regime", "prefill_bound_fraction_memory", "prefill_bound_fraction_compute",
    "decode_regime", "decode_bound_fraction_memory", "decode_bound_fraction_compute",
    "energy_j", "power_w_mean", "power_w_peak", "prefill_energy_j", "decode_energy_j",
    "energy_source", "energy_samples", "energy_invalid_reasons",
    "memory_leftover_bytes", "temp_c_start", "temp_c_end", "throttle_reasons",
    "flags", "error", "attempts", "started_at", "finished_at", "repeat", "repeat_of",
)  # fmt: skip
# Flat keys of serving cells (workload=serve; null in static records). Latency keys of
# static records (ttft_s_*, tpot_s_*, itl_s_*, e2e_s_*) are reused per request there.
SERVING_KEYS = (
    "workload", "server", "server_settings", "server_url", "concurrency", "request_rate", "burstiness",
    "num_requests", "completed_requests", "failed_requests", "request_errors",
    "duration_s", "request_throughput_per_s", "output_tokens_per_s_per_user",
    "output_tokens_per_s_per_card",
    "ttft_s_p90", "tpot_s_p90", "itl_s_mean", "itl_s_p90",
    "slo_ttft_ms", "slo_tpot_ms", "goodput_requests_per_s", "goodput_fraction",
    "usage_completion_tokens", "client_completion_tokens", "usage_mismatch_requests",
    "merged_chunk_requests", "itl_method",
    "server_start_s", "server_reused", "server_visible_devices", "server_peak_rss_bytes",
    "client_loop_lag_s_p50", "client_loop_lag_s_p99", "client_loop_lag_s_max", "client_cpu_share",
    "client_send_delay_s_p50", "client_send_delay_s_p99",
    "server_metrics", "server_requests",
    "server_ttft_s_mean", "server_ttft_s_p50", "server_ttft_s_p99",
    "server_itl_s_mean", "server_itl_s_p50", "server_itl_s_p99",
    "server_preemptions", "server_kv_cache_usage_peak", "server_prefix_cache_hit_rate",
    "server_spec_acceptance", "server_running_peak", "server_waiting_peak",
    "workload_kind", "prefix_groups", "conversation_turns", "conversation_sessions",
    "ttft_s_p50_first_turn", "ttft_s_p50_last_turn", "context_tokens_last_turn",
    "trace_sha256", "trace_requests_sent", "trace_lateness_s_p50", "trace_lateness_s_p99",
    "trace_lateness_s_max", "trace_late",
)  # fmt: skip
FLAT_KEYS = FLAT_KEYS + SERVING_KEYS + QUALITY_KEYS


def error_info(exc: BaseException, limit: int = 15) -> dict[str, str]:
    """{type, message, traceback}: the end of the traceback, for the record."""
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(tb).splitlines()[-limit:]
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "\n".join(tail)}


@dataclass
class Outcome:
    """What measuring a cell produced, as returned by the worker: plain data, no identity.

    ``fields`` holds the flat record keys the parts returned (metrics, memory, bounds, the
    backend's own keys); ``details`` the nested ones (``raw``, ``engine``, ``smi`` ...)."""

    status: Status = Status.FAILED
    error: dict[str, str] | None = None
    flags: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    # Text files for the cell's directory beside record.json (e.g. server.log); not in it.
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def failure(
        cls, exc: BaseException | dict[str, str], status: Status = Status.FAILED, **kw: Any
    ) -> Outcome:
        err = exc if isinstance(exc, dict) else error_info(exc)
        return cls(status=status, error=err, **kw)


def build_record(
    planned: PlannedCell | CellConfig,
    outcome: Outcome,
    *,
    attempts: int = 1,
    ray_node_id: str | None = None,
    code: dict[str, Any] | None = None,
    ray_cluster: str | None = None,
    node_index: int | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a cell (planned on the driver, or a bare cell config): its inputs,
    then what its outcome says. ``code`` (git_commit, git_dirty) is the driver's checkout,
    which workers may not see; ``node_index``: the index of the Ray node that ran it (the
    launcher's; simulated nodes: their start order); ``config``: ``plain(cell)`` when the
    caller has made it already (the driver, for the job's .hydra/config.yaml)."""
    p = planned if isinstance(planned, PlannedCell) else PlannedCell.of(planned)
    cell = p.cell
    rec: dict[str, Any] = dict.fromkeys(FLAT_KEYS)
    rec.update(
        schema_version=SCHEMA_VERSION,
        cell_id=p.cell_id,
        cell_dir=p.cell_dir,
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
        devices_per_cell=cell.devices_per_cell,
        expected_tokens=cell.batch * cell.seq,
        warmup_iterations=cell.bench.warmup,
        workload=cell.workload.name,
    )
    if cell.serving:
        rec.update(serving_inputs(cell))
    rec.update(outcome.fields)
    if cell.serving and rec.get("energy_valid") is None:  # no sampler: say so, keys unchanged
        rec.update(energy_valid=False, energy_invalid_reasons=[EnergyReason.NOT_MEASURED.value])
    rec.update(
        status=Status(outcome.status).value,
        flags=list(dict.fromkeys(Flag(f).value for f in outcome.flags)),
        error=outcome.error,
        attempts=attempts,
        ray_node_id=ray_node_id,
        ray_cluster=ray_cluster,
        node_index=node_index,
        fleet_of=p.fleet_of,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        repeat=p.repeat,
        repeat_of=p.repeat_of,
    )
    rec.update(outcome.details)
    rec["env"] = {**outcome.env, **(code or {})}
    rec["config"] = plain(cell) if config is None else config
    return rec


def serving_inputs(cell: CellConfig) -> dict[str, Any]:
    """The inputs a serving record repeats (its static-only keys are null)."""
    return {
        "batch": None, "expected_tokens": None, "warmup_iterations": None,
        "backend": engine_name(cell), "workload": cell.workload.name,
        "server": cell.server.kind, "server_settings": cell.server.label(),
        "server_url": cell.server.url,
        "concurrency": cell.concurrency, "request_rate": cell.request_rate,
        "burstiness": cell.workload.burstiness if cell.request_rate else None,
        "workload_kind": cell.workload.kind, "prefix_groups": cell.workload.prefix_groups or None,
        "slo_ttft_ms": cell.slo.ttft_ms or None, "slo_tpot_ms": cell.slo.tpot_ms or None,
    }  # fmt: skip


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """The flat keys of a record (what tables and the sweep's summary need), in their order,
    None where the record has none."""
    return {k: record.get(k) for k in FLAT_KEYS}
