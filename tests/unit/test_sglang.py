"""The SGLang backend: engine arguments, the generate call, token counts, engine reuse.

The real engine cannot run here: SGLang pins its own torch (sglang 0.5.23 requires
torch==2.14.1; this project tests on torch 2.13 CPU) and needs a GPU or an NPU. These tests
inject the stand-in engine of tests/sglang_standin.py through ``SGLangBackend.engine_factory``;
it validates the engine arguments and every request with SGLang's own ServerArgs and
SamplingParams where they import (tests/contract-requirements.txt), so it rejects what the
real engine rejects. tests/unit/test_sglang_contract.py checks the adapter against SGLang's code
directly; tests/unit/test_sglang_failures.py the engine failures; tests/unit/test_sglang_report.py the
limits, batch split and memory. What the stand-in cannot show (real timings, Ascend kernels)
is listed in docs/backends.md as not run.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from jobs.config import ModelConfig, SGLangOptions
from tests.sglang_standin import REAL_SGLANG, StandInEngine, installed, sgl_cell
from workers import run as measure
from workers.backends.sglang import backend as sgl
from workers.backends.sglang.backend import SGLangBackend, check_available, engine_kwargs
from workers.base import BackendUnavailable


@pytest.fixture
def stand_in(monkeypatch):
    yield from installed(monkeypatch)


@pytest.mark.parametrize("device", ["npu", "cuda", "cpu"])
def test_engine_kwargs_are_real_server_args(device):
    cell = sgl_cell(
        model=ModelConfig(name="llama3_8b", load_format="dummy", num_layers_override=2),
        sglang=SGLangOptions(attention_backend="triton" if device == "cuda" else None),
    )
    kw = engine_kwargs(cell, device, "/models/llama3_8b")
    assert "backend" not in kw  # the source article's backend="ascend" is no argument
    assert kw["model_path"] == "/models/llama3_8b" and kw["device"] == device
    assert kw["load_format"] == "dummy" and kw["skip_tokenizer_init"] is True
    assert kw["disable_radix_cache"] is True and kw["stream_interval"] == 1
    assert kw["random_seed"] == cell.bench.seed and kw["tp_size"] == 1
    assert json.loads(kw["json_model_override_args"]) == {"num_hidden_layers": 2}


def test_engine_kwargs_per_device():
    npu = engine_kwargs(sgl_cell(), "npu", "/m")
    assert npu["device"] == "npu" and npu["attention_backend"] == "ascend"
    assert npu["dtype"] == "float16"  # dtype auto = float16 on accelerators, as in the hf backend
    cuda = engine_kwargs(sgl_cell(), "cuda", "/m")
    assert "attention_backend" not in cuda  # SGLang picks its own on CUDA
    opts = SGLangOptions(tp_size=2, mem_fraction_static=0.7, disable_cuda_graph=True)
    bf16 = ModelConfig(name="llama3_8b", path="/m", dtype="bfloat16")
    kw = engine_kwargs(sgl_cell(sglang=opts, model=bf16), "cuda", "/m")
    assert kw["tp_size"] == 2 and kw["mem_fraction_static"] == 0.7
    assert kw["cuda_graph_backend_decode"] == kw["cuda_graph_backend_prefill"] == "disabled"
    assert "disable_cuda_graph" not in kw  # deprecated in SGLang (its CLI warns)
    assert kw["dtype"] == "bfloat16"
    assert kw["load_format"] == "auto" and "json_model_override_args" not in kw


def test_generate_call_shape_and_exact_counts(stand_in):
    rec = measure.run_cell(sgl_cell(batch=3, seq=5, prompt_len=7))
    assert rec["status"] == "ok", rec["error"]
    (engine,) = stand_in.instances
    assert engine.kwargs["model_path"].endswith("model_configs/llama3_8b")
    # warm-up + 2 measured iterations, each one generate call with the whole batch
    assert len(engine.calls) == 3
    call = engine.calls[0]
    assert len(call["input_ids"]) == 3 and all(len(p) == 7 for p in call["input_ids"])
    assert all(isinstance(t, int) and 0 <= t < 128256 for p in call["input_ids"] for t in p)
    # exact length through ignore_eos: SGLang refuses min_new_tokens without a tokenizer
    assert call["sampling_params"] == {"max_new_tokens": 5, "ignore_eos": True, "temperature": 0.0}
    assert rec["generated_tokens"] == rec["expected_tokens"] == 15
    assert "short_output" not in rec["flags"]  # (stand-in timings are too short to be stable)
    for steps in rec["raw"]["step_times_s"]:
        assert len(steps) == 5 and steps == sorted(steps)
    assert 0 < rec["ttft_s_mean"] <= rec["e2e_s_mean"]
    assert rec["model_parameters"] == 8_030_261_248  # counted on the meta device
    assert rec["engine"]["server_args"]["device"] == "cpu"
    assert rec["engine"]["timing"] == "stream"
    handler = rec["engine"]["server_args"]["custom_sigquit_handler"]
    assert handler == "workers.backends.sglang.watch.on_sigquit"  # recorded by name (JSON)
    json.dumps(rec)  # the whole record is JSON


def test_engine_started_once_and_shut_down(stand_in):
    first = measure.run_cell(sgl_cell(batch=2, seq=3, prompt_len=4))
    second = measure.run_cell(sgl_cell(batch=4, seq=2, prompt_len=6))
    assert first["status"] == second["status"] == "ok"
    assert len(stand_in.instances) == 1  # one engine, reused across cells
    assert (first["model_reused"], second["model_reused"]) == (False, True)
    assert second["generated_tokens"] == 8
    measure.drop_models()
    assert stand_in.instances[0].shut


def test_short_output_is_flagged(stand_in):
    stand_in.short_by = 2
    rec = measure.run_cell(sgl_cell(batch=2, seq=4, prompt_len=4))
    assert rec["status"] == "ok", rec["error"]
    assert rec["generated_tokens"] == 6 < rec["expected_tokens"] == 8
    assert "short_output" in rec["flags"]
    # the batch's 3rd and 4th tokens never existed for sequence 0: two steps only
    assert all(len(steps) == 2 for steps in rec["raw"]["step_times_s"])


def test_missing_sglang_gives_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sglang" else real(name, *a)
    )
    with pytest.raises(BackendUnavailable, match=r"pip install '\.\[sglang\]'"):
        check_available()
    # through the real engine factory, a cell becomes a failed record that says why
    assert SGLangBackend.engine_factory is sgl._start_sglang_engine
    rec = measure.run_cell(sgl_cell())
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "BackendUnavailable"
    assert "needs SGLang" in rec["error"]["message"]


def test_stand_in_rejects_what_sglang_rejects(stand_in):
    """The stand-in validates with SGLang's code (or its rules): the request the old adapter
    sent fails here as it fails in SGLang, and so does an unknown engine argument."""
    engine = StandInEngine(
        model_path=sgl.resolve_model_path(sgl_cell().model), skip_tokenizer_init=True
    )
    old = {"max_new_tokens": 4, "min_new_tokens": 4, "ignore_eos": True, "temperature": 0.0}
    with pytest.raises(ValueError, match="min_new_tokens"):
        list(engine.generate(input_ids=[[1, 2]], sampling_params=old, stream=True))
    with pytest.raises(TypeError):
        StandInEngine(model_path="/m", backend="ascend")
    engine.shutdown()
    print("validated with", "sglang's own code" if REAL_SGLANG else "the fallback rules")


@pytest.mark.skipif(not REAL_SGLANG, reason="needs sglang's modules (contract-requirements.txt)")
def test_sglang_without_its_engine_stack_is_unavailable(monkeypatch):
    """The contract-test install (sglang --no-deps) cannot start an engine: refused before
    launch with the install hint, not at the first cell."""
    sgl._engine_import_problem.cache_clear()
    try:
        problem = sgl._engine_import_problem()
        if problem is None:
            pytest.skip("this sglang can start an engine here")
        with pytest.raises(BackendUnavailable, match="cannot start an engine here"):
            check_available()
    finally:
        sgl._engine_import_problem.cache_clear()
