"""How each kind of server is started and asked for exact output lengths.

Pure functions (no server is started here), so tests check them against the real argument
parsers where the engines import: ``transformers serve`` (here), SGLang's ServerArgs and
vLLM's ``serve`` parser (on hosts that have them).

Exact lengths, each server's own way (read in its code, checked by tests/unit/
test_exact_length_contract.py against that code): ``transformers serve`` takes a
``generation_config`` JSON that updates the request's generate settings, ``eos_token_id``
included; continuous batching passes only ``max_new_tokens``, ``eos_token_id`` and sampling on
(so ``min_new_tokens`` is dropped there), and its ``RequestState`` and ``generate`` treat a
negative id as no EOS: ``{"max_new_tokens": n, "eos_token_id": -1}`` ends every request at n
tokens on both paths. SGLang and vLLM take ``ignore_eos`` (and ``min_tokens``); a plain OpenAI
endpoint gets ``max_tokens`` only, and its ``usage`` says how many came (``short_output`` when
fewer).

Cache bounds: every started server gets a KV cache sized by ``jobs.serving.kv_bound`` (the
cell's requests in flight at their longest, with headroom), not a share of the host's memory.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from jobs.config import CellConfig, SGLangOptions
from jobs.serving import KV_HEADROOM, kv_bound
from workers.backends.sglang.args import engine_dtype, engine_kwargs

HOST = "127.0.0.1"
NO_EOS = -1  # transformers' "no end-of-sequence token" (RequestState, generate)
CB_PAGE_TOKENS = 256  # ContinuousBatchingConfig.page_size: tokens of one cache block
CB_MAX_BATCH_TOKENS = 8192  # transformers' own default, the most one step takes
INSTALL_HINTS = {
    "transformers": "server=transformers needs FastAPI, Uvicorn, OpenAI types and Accelerate: "
    "pip install -e '.[serve]'",
    "sglang": "server=sglang needs SGLang: pip install '.[sglang]' on the accelerator host",
    "vllm": "server=vllm needs vLLM: pip install vllm (vllm-ascend on Ascend NPUs)",
}
# Modules a kind of server needs in this Python (what check_installed looks for).
REQUIRED_MODULES = {
    "transformers": ("transformers", "fastapi", "uvicorn", "openai", "accelerate"),
    "sglang": ("sglang",),
    "vllm": ("vllm",),
}


def api_of(cell: CellConfig) -> str:
    """The request dialect: the started engine's own, or server.api for url/command."""
    kind = cell.server.kind
    return kind if kind in ("transformers", "sglang", "vllm") else cell.server.api


def request_body(api: str, model: str, prompt: str, output_len: int) -> dict[str, Any]:
    """The JSON body of one streaming completion of exactly ``output_len`` tokens (greedy)."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": output_len,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if api == "transformers":
        # Not min_new_tokens: continuous batching drops it (and a negative EOS would make
        # generate's min-length processor mask the vocabulary's last token instead).
        exact = {"max_new_tokens": output_len, "eos_token_id": NO_EOS, "do_sample": False}
        body["generation_config"] = json.dumps(exact)
    elif api in ("sglang", "vllm"):
        body.update(min_tokens=output_len, ignore_eos=True)
    return body


def _flags(kwargs: dict[str, Any]) -> list[str]:
    """argparse-style flags of ServerArgs fields: True -> --flag, False/None -> left out."""
    argv: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    return argv


def transformers_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    o = cell.server.transformers
    argv = [sys.executable, "-m", "transformers.cli.transformers", "serve"]
    argv += ["--continuous-batching" if o.continuous_batching else "--no-continuous-batching"]
    argv += ["--host", HOST, "--port", str(port), "--device", device]
    argv += ["--dtype", engine_dtype(cell.model.dtype, device), "--log-level", o.log_level]
    if o.attn_implementation:
        argv += ["--attn-implementation", o.attn_implementation]
    # The CB cache: every request holds whole pages; without these flags transformers sizes
    # it from the device's (on the CPU: the host's) free memory. Without continuous batching
    # one request runs at a time, in a cache of its own length.
    bound = kv_bound(cell)
    pages = bound.seqs * -(-bound.seq_tokens // CB_PAGE_TOKENS)
    blocks = o.cb_num_blocks or int(pages * KV_HEADROOM + 0.999)
    batch_tokens = o.cb_max_batch_tokens or min(
        CB_MAX_BATCH_TOKENS, bound.seq_tokens * min(bound.seqs, 8)
    )
    argv += ["--cb-num-blocks", str(blocks), "--cb-max-batch-tokens", str(batch_tokens)]
    if cell.model.trust_remote_code:
        argv.append("--trust-remote-code")
    return [*argv, *cell.server.extra_args, model_path]


def sglang_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    """The Engine backend's ServerArgs (Ascend's attention backend included), as flags;
    prompts are text here, so the tokenizer stays on."""
    opts = SGLangOptions(**dataclasses.asdict(cell.server.sglang))
    as_engine = dataclasses.replace(cell, backend=dataclasses.replace(cell.backend, sglang=opts))
    kw = engine_kwargs(as_engine, device, model_path)
    kw.pop("skip_tokenizer_init")
    kw["disable_radix_cache"] = not cell.server.prefix_caching
    bound = kv_bound(cell)  # the KV pool and the requests running at once
    kw.update(max_total_tokens=bound.tokens, max_running_requests=bound.seqs)
    kw.update(host=HOST, port=port)
    if cell.server.served_model_name:
        kw["served_model_name"] = cell.server.served_model_name
    return [sys.executable, "-m", "sglang.launch_server", *_flags(kw), *cell.server.extra_args]


def kv_bytes_per_token(model_path: str, dtype: str, cell: CellConfig) -> int:
    """Bytes of K and V for one token over all layers, from the model's config.json (0 when
    there is none to read)."""
    try:
        c = json.loads((Path(model_path) / "config.json").read_text())
        c = c.get("text_config", c)
        heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or c["hidden_size"] // heads
        kv_heads = c.get("num_key_value_heads") or heads
        layers = cell.model.num_layers_override or c["num_hidden_layers"]
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return 0
    return 2 * layers * kv_heads * head_dim * (4 if dtype == "float32" else 2)


def vllm_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    o = cell.server.vllm
    argv = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", model_path]
    argv += ["--host", HOST, "--port", str(port)]
    argv += ["--dtype", engine_dtype(cell.model.dtype, device), "--seed", str(cell.bench.seed)]
    argv += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
    bound = kv_bound(cell)
    argv += ["--max-model-len", str(o.max_model_len or bound.seq_tokens)]
    argv += ["--max-num-seqs", str(o.max_num_seqs or bound.seqs)]
    per_token = kv_bytes_per_token(model_path, engine_dtype(cell.model.dtype, device), cell)
    if per_token:  # the KV cache itself (vLLM then ignores --gpu-memory-utilization)
        argv += ["--kv-cache-memory-bytes", str(bound.tokens * per_token)]
    else:  # no config to size it from: the stated share of the device
        argv += ["--gpu-memory-utilization", str(o.gpu_memory_utilization)]
    prefix = (
        "--enable-prefix-caching" if cell.server.prefix_caching else "--no-enable-prefix-caching"
    )
    argv.append(prefix)
    if cell.model.load_format != "auto":
        argv += ["--load-format", cell.model.load_format]
    if o.enforce_eager:
        argv.append("--enforce-eager")
    if cell.model.trust_remote_code:
        argv.append("--trust-remote-code")
    if cell.model.num_layers_override:
        argv += [
            "--hf-overrides",
            json.dumps({"num_hidden_layers": cell.model.num_layers_override}),
        ]
    if cell.server.served_model_name:
        argv += ["--served-model-name", cell.server.served_model_name]
    return [*argv, *cell.server.extra_args]


def command_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    """server.command with {python} {host} {port} {model_path} {model_name} {device} filled."""
    values = {
        "python": sys.executable, "host": HOST, "port": str(port), "device": device,
        "model_path": model_path, "model_name": cell.server.served_model_name or model_path,
    }  # fmt: skip
    return [arg.format(**values) for arg in cell.server.command] + list(cell.server.extra_args)


ARGV = {
    "transformers": transformers_argv,
    "sglang": sglang_argv,
    "vllm": vllm_argv,
    "command": command_argv,
}


def server_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    return ARGV[cell.server.kind](cell, device, model_path, port)
