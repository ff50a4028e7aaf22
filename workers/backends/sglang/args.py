"""What the adapter asks of SGLang: engine arguments and sampling parameters, as pure data.

Checked against SGLang's own code (``tests/unit/test_sglang_contract.py``, sglang 0.5.23): the
engine arguments construct ``ServerArgs``, parse with SGLang's command-line parser (current
names only, values among its choices) and survive pickling into the scheduler process; the
sampling parameters pass ``SamplingParams(...).normalize(None)`` and ``.verify(vocab_size)``,
which is what SGLang's tokenizer manager runs on every request of an engine started with
``skip_tokenizer_init``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jobs.config import CellConfig

#: The SGLang release whose code the contract tests run against.
CHECKED_SGLANG = "0.5.23"


def engine_dtype(dtype: str, device_kind: str) -> str:
    """model.dtype as SGLang's `dtype`; auto follows the HF backend (float16 on accelerators),
    so both backends measure the same weights dtype."""
    if dtype == "auto":
        return "float32" if device_kind == "cpu" else "float16"
    return dtype


def engine_kwargs(
    cell: CellConfig,
    device_kind: str,
    model_path: str,
    sigquit_handler: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of `sglang.Engine(...)` (= ServerArgs fields) for a cell's model.

    ``sigquit_handler`` becomes ``custom_sigquit_handler``: SGLang's child processes send
    SIGQUIT to this process when they fail, and without a handler of ours the engine kills
    this process's whole tree (the Ray worker with it). It must pickle by reference (a
    module-level function): SGLang pickles ServerArgs into its scheduler process.
    """
    opts = cell.backend.sglang
    kw: dict[str, Any] = {
        "model_path": model_path,
        "skip_tokenizer_init": True,  # prompts are token ids; shipped configs have no tokenizer
        "load_format": cell.model.load_format,  # auto | dummy
        "trust_remote_code": cell.model.trust_remote_code,
        "dtype": engine_dtype(cell.model.dtype, device_kind),
        "device": device_kind,
        "tp_size": opts.tp_size,
        "mem_fraction_static": opts.mem_fraction_static,
        "random_seed": cell.bench.seed,
        "disable_radix_cache": True,  # same prompts every iteration: no prefix-cache hits
        "stream_interval": 1,  # one streamed chunk per token: per-step times
        "log_level": opts.log_level,
    }
    if opts.disable_cuda_graph:
        # `disable_cuda_graph` is deprecated since the per-phase graph settings (0.5.x); these
        # are the names SGLang's deprecation message points to. On NPUs they switch off the
        # NPU graphs the same way.
        kw["cuda_graph_backend_decode"] = "disabled"
        kw["cuda_graph_backend_prefill"] = "disabled"
    attention = opts.attention_backend or ("ascend" if device_kind == "npu" else None)
    if attention:
        kw["attention_backend"] = attention
    if cell.model.num_layers_override:
        kw["json_model_override_args"] = json.dumps(
            {"num_hidden_layers": cell.model.num_layers_override}
        )
    if sigquit_handler is not None:
        kw["custom_sigquit_handler"] = sigquit_handler
    return kw


def sampling_params(seq: int) -> dict[str, Any]:
    """Exactly `seq` new tokens, greedy: ``ignore_eos`` + ``max_new_tokens``, as SGLang's own
    one-batch benchmark does. ``min_new_tokens`` is not sent: SGLang refuses it from an engine
    without a tokenizer. The count is still checked from each output's meta_info."""
    return {"max_new_tokens": seq, "ignore_eos": True, "temperature": 0.0}


def printable_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """The engine arguments as JSON-safe values (the handler by its qualified name)."""
    out = dict(kw)
    handler = out.get("custom_sigquit_handler")
    if handler is not None:
        out["custom_sigquit_handler"] = f"{handler.__module__}.{handler.__qualname__}"
    return out
