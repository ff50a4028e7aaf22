"""How each kind of server is started and asked for exact output lengths.

Pure functions (no server is started here), so tests check them against the real argument
parsers where the engines import: ``transformers serve`` (here), SGLang's ServerArgs and
vLLM's ``serve`` parser (on hosts that have them).

Exact lengths, each server's own way: ``transformers serve`` takes a ``generation_config``
JSON (``min_new_tokens = max_new_tokens``; it rejects ``ignore_eos`` and ``min_tokens``);
SGLang and vLLM take ``min_tokens`` and ``ignore_eos``; a plain OpenAI endpoint gets
``max_tokens`` only, and its ``usage`` says how many came (``short_output`` when fewer).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from jobs.config import CellConfig, SGLangOptions
from workers.backends.sglang.args import engine_dtype, engine_kwargs

HOST = "127.0.0.1"
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
        exact = {"max_new_tokens": output_len, "min_new_tokens": output_len, "do_sample": False}
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
    if o.cb_num_blocks:
        argv += ["--cb-num-blocks", str(o.cb_num_blocks)]
    if o.cb_max_batch_tokens:
        argv += ["--cb-max-batch-tokens", str(o.cb_max_batch_tokens)]
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
    kw.update(host=HOST, port=port)
    if cell.server.served_model_name:
        kw["served_model_name"] = cell.server.served_model_name
    return [sys.executable, "-m", "sglang.launch_server", *_flags(kw), *cell.server.extra_args]


def vllm_argv(cell: CellConfig, device: str, model_path: str, port: int) -> list[str]:
    o = cell.server.vllm
    argv = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", model_path]
    argv += ["--host", HOST, "--port", str(port)]
    argv += ["--dtype", engine_dtype(cell.model.dtype, device), "--seed", str(cell.bench.seed)]
    argv += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
    argv += ["--gpu-memory-utilization", str(o.gpu_memory_utilization)]
    prefix = (
        "--enable-prefix-caching" if cell.server.prefix_caching else "--no-enable-prefix-caching"
    )
    argv.append(prefix)
    if cell.model.load_format != "auto":
        argv += ["--load-format", cell.model.load_format]
    if o.max_num_seqs:
        argv += ["--max-num-seqs", str(o.max_num_seqs)]
    if o.max_model_len:
        argv += ["--max-model-len", str(o.max_model_len)]
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
