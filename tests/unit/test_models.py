"""Dummy weights from the shipped Llama-3 configs, exact parameter counts, and the HF speed
switch (static KV cache, torch.compile) on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import CompileConfig

from bounds.roofline import SHIPPED_CONFIGS
from jobs.config import (
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    HFOptions,
    ModelConfig,
)
from jobs.quality import QualityConfig
from workers import model_cache, run_cell
from workers.backends import hf
from workers.models import (
    build_dummy_model,
    model_config,
    parameter_count,
)

ONE_SHOT = BenchConfig(name="one", warmup=0, iterations=1, max_iterations=1)


def llama_parameters(cfg: dict) -> int:
    """Llama parameter count by hand: embeddings, attention (GQA), SwiGLU MLP, RMSNorms."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h  # q,o + k,v + gate,up,down + 2 norms
    heads = v * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return heads + cfg["num_hidden_layers"] * layer + h  # + final norm


@pytest.fixture(autouse=True)
def _drop_loaded_models():
    yield
    model_cache.drop_models()


@pytest.mark.parametrize(
    "name, expected", [("llama3_8b", 8_030_261_248), ("llama3_70b", 70_553_706_496)]
)
def test_exact_parameter_counts_on_meta_device(name, expected):
    cfg = json.loads((SHIPPED_CONFIGS / name / "config.json").read_text())
    assert llama_parameters(cfg) == expected
    assert parameter_count(ModelConfig(name=name)) == expected
    one = ModelConfig(name=name, num_layers_override=1)
    assert parameter_count(one) == llama_parameters({**cfg, "num_hidden_layers": 1})


class _Allocations(TorchDispatchMode):
    """Every tensor any op returns: (dtype, elements, device)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, int, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.seen.append((t.dtype, t.numel(), t.device.type))
        return out


def test_dummy_build_makes_no_float32_copy():
    """70B in bfloat16 on the meta device: no weight-sized tensor is ever float32."""
    config = model_config(ModelConfig(name="llama3_70b"))
    with _Allocations() as allocs:
        net = build_dummy_model(config, torch.bfloat16, "meta", trust_remote_code=False)
    weights = [(d, n, dev) for d, n, dev in allocs.seen if n >= 1_000_000]
    assert weights, "the build allocated no weights at all?"
    assert {d for d, _, _ in weights} == {torch.bfloat16}
    assert {dev for _, _, dev in weights} == {"meta"}
    assert {p.dtype for p in net.parameters()} == {torch.bfloat16}
    assert net.config.num_hidden_layers == 80


def tiny_cell(tiny_cache: Path, opts: HFOptions, **kw) -> CellConfig:
    return CellConfig(
        model=ModelConfig(cache_dir=str(tiny_cache)),
        backend=BackendConfig(name="hf", hf=opts),
        device=DeviceConfig(name="cpu"),
        bench=kw.pop("bench", BenchConfig(name="quick", warmup=1, iterations=2, max_iterations=2)),
        **kw,
    )


def test_speed_switch_off_by_default():
    assert hf.speed_options(HFOptions()) == {}
    static = hf.speed_options(HFOptions(static_cache=True))
    # a static cache alone must not switch on transformers' auto-compile (it would on cuda)
    assert static == {"cache_implementation": "static", "disable_compile": True}
    compiled = hf.speed_options(HFOptions(compile=True))
    assert compiled["cache_implementation"] == "static"  # compile implies the static cache
    assert compiled["compile_config"]._compile_all_devices is True  # cpu and npu too
    default = CompileConfig()  # inductor: transformers' own settings, untouched
    assert (compiled["compile_config"].backend, compiled["compile_config"].mode) == (
        default.backend, default.mode)  # fmt: skip
    traced = hf.speed_options(HFOptions(compile=True, compile_backend="aot_eager"))
    assert (traced["compile_config"].backend, traced["compile_config"].mode) == ("aot_eager", None)


def test_static_cache_exact_tokens_and_step_clock(tiny_cache):
    rec = run_cell(tiny_cell(tiny_cache, HFOptions(static_cache=True), batch=3, seq=6))
    assert rec["status"] == "ok", rec["error"]
    assert rec["generated_tokens"] == rec["expected_tokens"] == 18
    assert set(rec["flags"]) <= {"unstable", "host_busy"}  # they depend on machine load
    assert all(len(s) == 6 and s == sorted(s) for s in rec["raw"]["step_times_s"])
    assert rec["engine"] == {"kv_cache": "static", "compiled": False}
    (backend,) = model_cache._LOADED.values()
    assert not hasattr(backend.model, "_compiled_call")


def test_compile_wiring_exact_tokens(tiny_cache):
    """torch.compile through generate's compile_config, with dynamo's `eager` backend so the
    test does not wait for inductor code generation (bench/speed_switch.py runs inductor)."""
    # The check prompts in the cell's own shape: the check runs the decode step compiled in
    # prepare() instead of tracing it again for a second shape.
    check = QualityConfig(prompts=2, prompt_len=5, tokens=4)
    cell = tiny_cell(
        tiny_cache,
        HFOptions(compile=True, compile_backend="eager"),
        batch=2,
        seq=4,
        prompt_len=5,
        quality=check,
    )
    rec = run_cell(cell)
    assert rec["status"] == "ok", rec["error"]
    assert rec["generated_tokens"] == rec["expected_tokens"] == 8
    assert all(len(s) == 4 for s in rec["raw"]["step_times_s"])
    assert rec["engine"] == {"kv_cache": "static", "compiled": True, "compile_backend": "eager"}
    (backend,) = model_cache._LOADED.values()
    assert backend.model._last_compile_config.backend == "eager"  # the compiled forward ran
    assert backend.compiled_for == (2, 5, 4)  # compiled in prepare(), outside the timers
    assert rec["check_status"] == "ok" and rec["check_tokens"] == 8


GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_positions": 64,
        "n_ctx": 64, "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 128}  # fmt: skip
QWEN2 = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 128, "max_position_embeddings": 4096}  # fmt: skip
BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 128}  # fmt: skip


@pytest.mark.parametrize("name", ["llama3_8b", "llama3_70b", "gpt2", "qwen2", "bert"])
def test_position_limit_and_causal_lm_from_json_agree_with_transformers(name, tmp_path):
    """The launch's checks read config.json without importing transformers where the JSON
    settles it: the same answers as transformers' own config class and causal-LM mapping."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from workers.models import _json_position_limit, causal_lm_problem, position_limit

    raw = {"gpt2": GPT2, "qwen2": QWEN2, "bert": BERT}.get(name)
    if raw is None:
        path = SHIPPED_CONFIGS / name
        raw = json.loads((path / "config.json").read_text())
    else:
        path = tmp_path
        (path / "config.json").write_text(json.dumps(raw))
    assert _json_position_limit(raw) is not None or name == "bert"
    expected = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
    assert position_limit(ModelConfig(name="m", path=str(path))) == expected
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    assert (causal_lm_problem(raw) is None) == any(a in causal for a in raw["architectures"])
