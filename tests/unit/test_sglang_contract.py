"""The SGLang adapter checked against SGLang's own code (sglang 0.5.23), not against a stand-in.

What the adapter asks of the engine goes through the classes SGLang itself uses: the engine
arguments through ``ServerArgs`` (its fields, its command-line parser with its choices and
deprecations, its pickling to the scheduler process) and the sampling parameters through
``SamplingParams(...).normalize(None)`` / ``.verify(vocab_size)``, exactly as SGLang's
tokenizer manager does for a request when the engine runs with ``skip_tokenizer_init``.

SGLang's engine itself needs CUDA or an NPU; these modules import on a CPU machine with
``pip install --no-deps -r tests/contract-requirements.txt``. Without them the module is
skipped (CI installs them).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import pickle
import re
from pathlib import Path

import pytest

try:
    from sglang.srt.managers.scheduler_components.memory_usage import build_memory_usage
    from sglang.srt.model_executor.cuda_graph_config import CudaGraphConfig, PhaseConfig
    from sglang.srt.sampling.sampling_params import SamplingParams
    from sglang.srt.server_args import ServerArgs
    from sglang.srt.utils.msgspec_utils import msgspec_to_builtins
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"sglang cannot be imported here ({exc}); run "
        "`pip install --no-deps -r tests/contract-requirements.txt` to check the adapter "
        "against SGLang's own ServerArgs and SamplingParams",
        allow_module_level=True,
    )

from jobs.config import ModelConfig, SGLangOptions
from tests.sglang_standin import sgl_cell
from workers.backends.sglang.backend import engine_kwargs, sampling_params
from workers.backends.sglang.info import engine_limits, engine_memory
from workers.backends.sglang.watch import on_sigquit

CHECKED_VERSION = "0.5.23"
LLAMA3_VOCAB = 128256
NOT_ON_THE_COMMAND_LINE = {"custom_sigquit_handler"}  # a callable: Engine(...) only

CASES = {
    "npu": (sgl_cell(), "npu"),
    "cuda": (sgl_cell(), "cuda"),
    "cpu": (sgl_cell(), "cpu"),
    "cuda-options": (
        sgl_cell(
            model=ModelConfig(
                name="llama3_8b", load_format="dummy", dtype="bfloat16", num_layers_override=2
            ),
            sglang=SGLangOptions(
                tp_size=2,
                mem_fraction_static=0.7,
                attention_backend="triton",
                disable_cuda_graph=True,
                log_level="warning",
            ),
        ),
        "cuda",
    ),  # fmt: skip
    "npu-no-graph": (sgl_cell(sglang=SGLangOptions(disable_cuda_graph=True)), "npu"),
}


def kwargs_of(case: str) -> dict:
    """The arguments SGLangBackend.load passes (its SIGQUIT handler included)."""
    cell, device = CASES[case]
    return engine_kwargs(cell, device, "/models/llama3_8b", sigquit_handler=on_sigquit)


def test_the_checked_version_is_installed():
    assert importlib.metadata.version("sglang") == CHECKED_VERSION


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_kwargs_construct_server_args(case):
    kw = kwargs_of(case)
    args = ServerArgs(**kw)  # an unknown name is a TypeError here, as in sglang.Engine(**kw)
    for name, value in kw.items():
        assert getattr(args, name) == value, name


def _sglang_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    return parser


def _argv(kw: dict, actions: dict[str, argparse.Action]) -> list[str]:
    argv = []
    for name, value in kw.items():
        if name in NOT_ON_THE_COMMAND_LINE:
            continue
        flag = actions[name].option_strings[0]
        if isinstance(value, bool):
            assert value is True or actions[name].default is False, name
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_kwargs_are_current_command_line_settings(case):
    """Every argument is one SGLang's own parser accepts, with a value among its choices, and
    none of them is a deprecated spelling (SGLang warns for those and drops them later)."""
    kw = kwargs_of(case)
    parser = _sglang_parser()
    actions = {a.dest: a for a in parser._actions}
    for name, value in kw.items():
        if name in NOT_ON_THE_COMMAND_LINE:
            continue
        assert name in actions, f"{name} is not an SGLang command-line setting"
        action = actions[name]
        assert not type(action).__name__.startswith("Deprecated"), f"{name} is deprecated"
        if action.choices is not None:
            assert value in action.choices, (name, value, action.choices)
    parsed = ServerArgs.from_cli_args(parser.parse_args(_argv(kw, actions)))
    for name, value in kw.items():
        if name not in NOT_ON_THE_COMMAND_LINE:
            assert getattr(parsed, name) == value, name


@pytest.mark.parametrize("case", ["npu", "cuda-options"])
def test_server_args_travel_to_the_scheduler_process(case):
    """SGLang pickles ServerArgs into its scheduler process (spawn): every argument, the
    SIGQUIT handler included, must survive that."""
    kw = kwargs_of(case)
    assert "custom_sigquit_handler" in kw
    back = pickle.loads(pickle.dumps(ServerArgs(**kw)))
    for name, value in kw.items():
        assert getattr(back, name) == value, name


@pytest.mark.parametrize("seq", [1, 64, 256])
def test_sampling_params_pass_sglang_validation(seq):
    """The engine runs with skip_tokenizer_init, so SGLang normalises every request with no
    tokenizer (normalize(None)) and then verifies it against the model's vocabulary."""
    assert kwargs_of("npu")["skip_tokenizer_init"] is True
    params = SamplingParams(**sampling_params(seq))
    params.normalize(None)
    params.verify(LLAMA3_VOCAB)
    assert params.max_new_tokens == seq and params.ignore_eos is True
    assert params.top_k == 1  # temperature 0 is greedy in SGLang


def test_min_new_tokens_is_refused_without_a_tokenizer():
    """Why the adapter forces the length with ignore_eos alone: SGLang refuses min_new_tokens
    when the engine has no tokenizer (the bug this contract was written for)."""
    params = SamplingParams(max_new_tokens=8, min_new_tokens=8, ignore_eos=True)
    with pytest.raises(ValueError, match="min_new_tokens=8 is unavailable"):
        params.normalize(None)


def test_json_model_override_args_is_valid_json():
    kw = kwargs_of("cuda-options")
    assert json.loads(kw["json_model_override_args"]) == {"num_hidden_layers": 2}


# -- the hooks the failure handling and the record rely on, read in SGLang's own code --------


def _source(module: str) -> str:
    """The installed SGLang module's text (its dependencies need not import here)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    return Path(spec.origin).read_text()


def test_sigquit_hooks_are_where_the_watch_expects_them():
    engine = _source("sglang.srt.entrypoints.engine")
    assert "signal.signal(signal.SIGQUIT, cfg.custom_sigquit_handler)" in engine
    manager = _source("sglang.srt.managers.tokenizer_manager")
    assert "self.signal_handler_class = SignalHandler" in manager
    assert re.search(
        r"signal_handler = self\.signal_handler_class\(self\)\s+"
        r"(?:#.*\s+)*loop\.add_signal_handler\(\s*signal\.SIGTERM.*\s+"
        r"(?:#.*\s+)*loop\.add_signal_handler\(\s*signal\.SIGQUIT, "
        r"signal_handler\.running_phase_sigquit_handler",
        manager,
    ), "the running-phase SIGQUIT handler is no longer signal_handler_class's"
    assert "def running_phase_sigquit_handler(self, signum=None, frame=None)" in manager
    scheduler = _source("sglang.srt.managers.scheduler")
    assert 'logger.error(f"Scheduler hit an exception: {traceback}")' in scheduler
    assert "parent_process.send_signal(signal.SIGQUIT)" in scheduler
    # the streamed generate waits on the engine's loop: stopping it ends the wait
    assert "self.loop.run_until_complete(generator.__anext__())" in engine


def test_server_info_as_sglang_builds_it_is_read():
    """The parts of get_server_info() the record reads, built with SGLang's own code, and the
    key names read from the code that fills them."""
    graph = CudaGraphConfig(decode=PhaseConfig(backend="full", max_bs=32, bs=[1, 2, 4, 8, 16, 32]))
    memory = build_memory_usage(
        weight_gb=14.96, kv_cache_gb=47.1, startup_available_gb=78.0, token_capacity=385_000,
        token_capacity_swa=None, target_graph_memory_usage={"decode": 0.41},
        draft_graph_memory_usage=None,
    )  # fmt: skip
    state = {
        "effective_max_running_requests_per_dp": 48,
        "memory_usage": memory,
        "decode_cuda_graph_bs": [1, 2, 4, 8, 16, 32],
    }
    info = msgspec_to_builtins(
        {"cuda_graph_config": graph, "max_prefill_tokens": 16384, "chunked_prefill_size": 8192,
         "max_total_num_tokens": 385_000, "internal_states": [state]}
    )  # fmt: skip
    written = _source("sglang.srt.managers.scheduler_components.internal_state")
    for key in state:
        assert f'state["{key}"]' in written, key
    assert '"max_total_num_tokens": self.max_total_num_tokens' in _source(
        "sglang.srt.managers.scheduler"
    )
    limits = engine_limits(info)
    assert limits["max_running_requests"] == 48 and limits["max_total_num_tokens"] == 385_000
    assert limits["decode_graph_batch_sizes"] == [1, 2, 4, 8, 16, 32]
    assert limits["decode_graph_disabled"] is False and limits["decode_graph_max_bs"] == 32
    mem = engine_memory(info)
    assert mem["weight_bytes"] == round(14.96 * 2**30)
    assert mem["graph_bytes"] == round(0.41 * 2**30)
    assert mem["engine_reserved_bytes"] == sum(
        mem[k] for k in ("weight_bytes", "kv_cache_bytes", "graph_bytes")
    )
