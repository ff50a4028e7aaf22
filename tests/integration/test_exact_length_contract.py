"""Exact output lengths, checked against each server's own request path (not a stand-in).

The model here always wants to end: its greedy choice is its EOS token at every step (a hook
on the LM head), so a request that lets the server stop at EOS ends after one token. Our
request (``workers.serving.engines.request_body``) must still get exactly ``n`` tokens:

- ``transformers serve`` (5.25, in the venv): the completion handler's own validation and
  ``_build_generation_kwargs``, then the real runners with the tiny model: ``GenerateRunner``
  (``--no-continuous-batching``: ``model.generate``) and ``CBGenerateRunner`` (continuous
  batching: its kwargs builder and the real batching manager, sized by our argv's cache flags
  read through the real ``serve`` CLI).
- SGLang (0.5.23, tests/contract-requirements.txt): its ``CompletionRequest`` model, its
  ``_build_sampling_params`` and ``Req._check_token_based_finish`` run from SGLang's source
  (their modules import torchvision, which is not installed), its ``SamplingParams``.
- vLLM (tests/contract-requirements.txt, --no-deps): its ``CompletionRequest`` and
  ``to_sampling_params``, ``update_from_generation_config`` as its input processor calls it,
  a real v1 ``Request`` and the scheduler's ``check_stop``; its ``serve`` argument parser.
"""

from __future__ import annotations

import ast
import json
import os
import threading
from pathlib import Path

import pytest

from jobs.config import TinyModelConfig, from_values
from workers.serving.engines import request_body, server_argv

N = 16
# vLLM's parser asks its platform for a device type, found once per process: the CPU here
# (only vLLM reads this).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")


def _cell(kind: str, **values):
    return from_values({"workload": {"name": "serve"}, "server": {"kind": kind}, **values})


# --- transformers serve -------------------------------------------------------------------
@pytest.fixture(scope="module")
def eos_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.tiny import ensure_tiny_model

    path = ensure_tiny_model(TinyModelConfig(), str(tmp_path_factory.mktemp("tiny")))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    model.lm_head.register_forward_hook(
        lambda _m, _i, out: out.index_fill_(-1, torch.tensor([eos]), 1e4)
    )
    return model, AutoTokenizer.from_pretrained(path), str(path)


def _generation_kwargs(body: dict, model) -> dict:
    from transformers.cli.serving.completion import CompletionHandler
    from transformers.cli.serving.utils import GenerationState

    handler = CompletionHandler(None, GenerationState())
    handler._validate_request(body)  # the server's 422 for fields it does not take
    return handler._build_generation_kwargs(body, model.generation_config)


def _cb_config(path: str):
    """The continuous batching config `transformers serve` builds from our argv."""
    import typer
    from transformers import ContinuousBatchingConfig
    from transformers.cli.transformers import app

    argv = server_argv(_cell("transformers", concurrency=4), "cpu", path, 8123)
    group = app if hasattr(app, "commands") else typer.main.get_command(app)
    params = group.commands["serve"].make_context("serve", list(argv[4:])).params
    assert params["cb_num_blocks"] and params["cb_max_batch_tokens"]
    return ContinuousBatchingConfig(
        num_blocks=params["cb_num_blocks"], max_batch_tokens=params["cb_max_batch_tokens"]
    )


def _run(runner_kind: str, body: dict, eos_model) -> list[int]:
    from transformers.cli.serving.utils import CBGenerateRunner, GenerateRunner

    model, tok, path = eos_model
    results, done = {}, threading.Event()

    def send(_ids, _tokens, finished):
        for rid, result in finished:
            results[rid] = result
            done.set()

    kwargs = _generation_kwargs(body, model)
    if runner_kind == "cb":
        runner = CBGenerateRunner(model, tok, send, _cb_config(path))
        inputs = tok("the model")
    else:
        runner = GenerateRunner(model, tok, send)
        inputs = tok("the model", return_tensors="pt")
    try:
        runner.generate(1, inputs, kwargs, stream=False)
        assert done.wait(300), "no answer from the runner"
    finally:
        if runner_kind == "cb":
            runner.manager.stop(block=True)
            _end_outputs_thread(runner.manager)
    assert not isinstance(results[1], Exception), results[1]
    return results[1]


OUTPUTS_THREAD = "continuous-batching-outputs"


def _end_outputs_thread(manager) -> None:
    """transformers 5.25's outputs thread (CBGenerateRunner) never ends once its manager has
    stopped: `get_result` then returns None at once and the loop asks again, a core's worth
    of CPU for the rest of this process (it slowed the whole suite about 2x). The thread
    returns when the manager reports a fatal error: report one, and wait for it to end."""
    manager.background_thread_status.record_fatal_error(RuntimeError("stopped by the test"))
    for t in threading.enumerate():
        if t.name == OUTPUTS_THREAD:
            t.join(60)
    assert not [t for t in threading.enumerate() if t.name == OUTPUTS_THREAD]


@pytest.mark.parametrize("runner_kind", ["generate", "cb"])
def test_transformers_serve_gives_exactly_n_tokens(runner_kind, eos_model):
    tokens = _run(runner_kind, request_body("transformers", "m", "the model", N), eos_model)
    eos = eos_model[0].generation_config.eos_token_id
    assert len(tokens) == N and set(tokens) == {eos}  # the model wanted to stop every time


def test_min_new_tokens_would_end_early_with_continuous_batching(eos_model):
    """Why the request does not use min_new_tokens: continuous batching drops it."""
    body = request_body("transformers", "m", "the model", N)
    body["generation_config"] = json.dumps(
        {"max_new_tokens": N, "min_new_tokens": N, "do_sample": False}
    )
    assert len(_run("cb", body, eos_model)) == 1
    assert len(_run("generate", body, eos_model)) == N


# --- SGLang -------------------------------------------------------------------------------
def _function_from_source(path: Path, name: str, glb: dict):
    """A function (or method) of a module that cannot be imported here, compiled from its
    own source, so the test runs the engine's code and not a copy."""
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
    node.decorator_list = []
    module = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
    exec(compile(module, str(path), "exec"), glb)  # noqa: S102 (the installed engine's code)
    return glb[name]


class _NoStops:
    def encode(self, text, add_special_tokens=False):  # pragma: no cover - no stop strings
        raise AssertionError("the request has no stop strings")


def test_sglang_request_ignores_eos_until_max_new_tokens():
    protocol = pytest.importorskip("sglang.srt.entrypoints.openai.protocol")
    from typing import Any

    import sglang
    from sglang.srt.sampling.sampling_params import SamplingParams

    assert sglang.__version__ == "0.5.23"
    srt = Path(sglang.__file__).parent / "srt"
    build = _function_from_source(
        srt / "entrypoints/openai/serving_completions.py", "_build_sampling_params",
        {"Any": Any, "CompletionRequest": protocol.CompletionRequest},
    )  # fmt: skip
    request = protocol.CompletionRequest.model_validate(request_body("sglang", "m", "hi", N))
    params = SamplingParams(**build(None, request))
    params.normalize(_NoStops())  # as the tokenizer manager does (its tokenizer: no stop strings)
    params.verify(32000)
    assert params.max_new_tokens == N and params.ignore_eos

    finish = _function_from_source(
        srt / "managers/schedule_batch.py",
        "_check_token_based_finish",
        {"List": list, "FINISH_MATCHED_TOKEN": lambda matched: ("matched", matched)},
    )

    class Req:  # what _check_token_based_finish reads of a running request
        sampling_params, eos_token_ids, tokenizer, output_ids = params, {2}, None, [2]

    assert finish(Req(), [2]) is False  # EOS does not end it: only max_new_tokens does
    Req.sampling_params = SamplingParams(max_new_tokens=N, min_new_tokens=N)
    assert finish(Req(), [2]) is True  # without ignore_eos, the first EOS would


# --- vLLM ---------------------------------------------------------------------------------
def _vllm_tokens(body: dict, eos: int = 2) -> int:
    """Tokens a request gets from vLLM's v1 scheduler when the model always wants EOS
    (unless vLLM's min-tokens processor masks its stop tokens, as it does below min_tokens)."""
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.v1.core.sched.utils import check_stop
    from vllm.v1.request import Request

    request = CompletionRequest.model_validate(body)
    params = request.to_sampling_params(request.max_tokens)
    params.update_from_generation_config({"eos_token_id": eos}, eos)
    req = Request("r", [1, 5, 6], params, None)
    for _ in range(4 * N):
        masked = req.num_output_tokens < params.min_tokens
        req.append_output_token_ids(7 if masked and eos in params.all_stop_token_ids else eos)
        if check_stop(req, max_model_len=256):
            break
    return req.num_output_tokens


def test_vllm_request_gives_exactly_n_tokens():
    pytest.importorskip("vllm.v1.core.sched.utils")
    body = request_body("vllm", "m", "hi", N)
    assert _vllm_tokens(body) == N
    plain = {k: v for k, v in body.items() if k not in ("ignore_eos", "min_tokens")}
    assert _vllm_tokens(plain) == 1  # what the test guards against


def test_vllm_argv_parses_with_vllms_own_parser(tmp_path):
    cli_args = pytest.importorskip("vllm.entrypoints.common.cli_args")
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from workers.tiny import ensure_tiny_model

    path = str(ensure_tiny_model(TinyModelConfig(), str(tmp_path)))
    argv = server_argv(_cell("vllm", concurrency=8, seq=64, prompt_len=64), "cuda", path, 8000)
    assert argv[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", path]
    args = cli_args.make_arg_parser(FlexibleArgumentParser()).parse_args(argv[4:])
    assert args.model_tag == path and args.port == 8000
    assert args.max_num_seqs == 16 and args.max_model_len == 256
    # 1.25 x 16 x 256 tokens of K and V: 2 x 4 layers x 4 heads x 32 dims x 2 bytes each
    assert args.kv_cache_memory_bytes == 5120 * 2 * 4 * 4 * 32 * 2
