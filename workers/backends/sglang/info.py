"""What the SGLang engine says about itself (``Engine.get_server_info()``), read for a record.

The engine's limits decide whether a cell's batch runs as one static batch: SGLang admits at
most ``max_running_requests`` sequences at once, keeps the KV cache of at most
``max_total_num_tokens`` tokens (with ``ignore_eos`` it reserves prompt + all new tokens of a
request on admission), and prefills at most ``max_prefill_tokens`` (and
``chunked_prefill_size``) tokens per forward pass. A batch above a limit is split by the
scheduler: the cell then measures a queue, not a batch (flag ``batch_split``). Decode CUDA/NPU
graphs are captured for some batch sizes: a batch between two of them is padded to the next,
one above the largest runs without a graph (recorded as ``decode_graph``, not a split).

The engine's memory (weights, KV pool, graphs; GiB in ``internal_states[0].memory_usage``) is
the memory that matters for an engine cell: the model lives in SGLang's scheduler process, so
this process's torch counters would read 0.

Field names are those of sglang 0.5.23 (checked in tests/unit/test_sglang_contract.py), with the
flat names of older releases (``cuda_graph_bs``, ``disable_cuda_graph``) as fallbacks; anything
missing is recorded as None, never guessed.
"""

from __future__ import annotations

from typing import Any

GIB = 2**30
MIB = 2**20


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _state(info: dict[str, Any]) -> dict[str, Any]:
    states = info.get("internal_states")
    if isinstance(states, list) and states and isinstance(states[0], dict):
        return states[0]
    return {}


def _decode_graph_config(info: dict[str, Any]) -> dict[str, Any]:
    graph = info.get("cuda_graph_config")
    decode = graph.get("decode") if isinstance(graph, dict) else None
    return decode if isinstance(decode, dict) else {}


def engine_limits(info: dict[str, Any]) -> dict[str, Any]:
    """The limits that decide how a batch runs, from the engine's server info."""
    state = _state(info)
    decode = _decode_graph_config(info)
    sizes = state.get("decode_cuda_graph_bs") or decode.get("bs") or info.get("cuda_graph_bs")
    sizes = sorted(int(s) for s in sizes) if isinstance(sizes, list) and sizes else None
    if "backend" in decode:
        disabled: bool | None = decode["backend"] == "disabled"
    elif "disable_cuda_graph" in info:
        disabled = bool(info["disable_cuda_graph"])
    else:
        disabled = None
    return {
        "max_running_requests": _int(state.get("effective_max_running_requests_per_dp"))
        or _int(info.get("max_running_requests")),
        "max_total_num_tokens": _int(info.get("max_total_num_tokens")),
        "max_prefill_tokens": _int(info.get("max_prefill_tokens")),
        "chunked_prefill_size": _int(info.get("chunked_prefill_size")),
        "decode_graph_batch_sizes": sizes,
        "decode_graph_max_bs": _int(decode.get("max_bs"))
        or _int(info.get("cuda_graph_max_bs"))
        or (sizes[-1] if sizes else None),
        "decode_graph_disabled": disabled,
    }


def batch_split(limits: dict[str, Any], batch: int, prompt_len: int, seq: int) -> list[str]:
    """Why the engine cannot run this batch as one batch ([] = it can, as far as known)."""
    reasons = []
    running = limits.get("max_running_requests")
    if running is not None and batch > running:
        reasons.append(f"batch {batch} > max_running_requests {running}")
    pool = limits.get("max_total_num_tokens")
    need = batch * (prompt_len + seq)
    if pool is not None and need > pool:
        reasons.append(f"batch x (prompt_len + seq) = {need} tokens > KV pool of {pool} tokens")
    budgets = [b for b in (limits.get("max_prefill_tokens"), limits.get("chunked_prefill_size"))]
    budget = min((b for b in budgets if b is not None and b > 0), default=None)
    if budget is not None and batch * prompt_len > budget:
        reasons.append(
            f"prefill of batch x prompt_len = {batch * prompt_len} tokens > {budget} tokens "
            "per prefill pass"
        )
    return reasons


def decode_graph(limits: dict[str, Any], batch: int) -> str | None:
    """How the decode steps of this batch run: captured graph, padded, eager, or unknown."""
    if limits.get("decode_graph_disabled"):
        return "disabled"
    sizes = limits.get("decode_graph_batch_sizes")
    if sizes:
        if batch in sizes:
            return "captured"
        above = [s for s in sizes if s > batch]
        if above:
            return f"padded to {above[0]}"
        return f"eager: batch {batch} > largest captured {sizes[-1]}"
    top = limits.get("decode_graph_max_bs")
    if top is not None:
        return "captured or padded" if batch <= top else f"eager: batch {batch} > max {top}"
    return None


def _gib(value: Any) -> int | None:
    """GiB as SGLang reports them -> bytes; a missing or non-positive figure is None."""
    if isinstance(value, dict):
        parts = [v for v in value.values() if isinstance(v, int | float)]
        value = sum(parts) if parts else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(round(value * GIB))


def engine_memory(info: dict[str, Any]) -> dict[str, int | None]:
    """Weights, KV pool and graphs the engine holds on its device(s), in bytes."""
    usage = _state(info).get("memory_usage")
    usage = usage if isinstance(usage, dict) else {}
    parts = {
        "weight_bytes": _gib(usage.get("weight")),
        "kv_cache_bytes": _gib(usage.get("kvcache")),
        "graph_bytes": _gib(usage.get("graph")),
    }
    known = parts["weight_bytes"] is not None and parts["kv_cache_bytes"] is not None
    total = sum(v for v in parts.values() if v is not None) if known else None
    return {**parts, "engine_reserved_bytes": total}


def device_used_bytes(snapshot: dict[str, Any] | None, n_devices: int) -> int | None:
    """Device memory in use on the engine's devices, from an smi snapshot, or None."""
    if not snapshot or not isinstance(snapshot.get("devices"), list):
        return None
    devices = snapshot["devices"]
    if not snapshot.get("filtered") and len(devices) != n_devices:
        return None  # the visible ids are unknown: cannot tell which devices are ours
    if len(devices) < n_devices:
        return None
    used = []
    for d in devices[:n_devices]:
        mb = d.get("hbm_used_mb") if d.get("hbm_used_mb") is not None else d.get("memory_used_mb")
        if mb is None:
            return None
        used.append(mb)
    return sum(used) * MIB if sum(used) > 0 else None
